"""Studies made of many training runs: the ablation of the paper's claims (`ablation`), its statistics and report."""
