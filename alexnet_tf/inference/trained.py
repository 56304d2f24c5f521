"""A trained AlexNet, whatever the user points at, behind one interface: `load_model(path)` -> `TrainedModel`
(`inference.model`; a run is a `RunModel`, an export an `ExportModel`).

Accepted paths: a run directory (its latest checkpoint, restored into an unpinned `build_alexnet` model), a
checkpoint prefix inside one (RUN/.../ckpt-N), a SavedModel version folder (exports/alexnet/3, used through
its signatures only) or a folder of versions (the highest). Both kinds preprocess with the very functions the export
is built from (`data.preprocess` and `crops`), so a run and its export give the same numbers:

    run     prepared data: `data.eval_dataset` ten crops (minus the run's own training mean) -> `crops`
            image files: the functions the export is traced from (`serving.signatures.serving_functions`)
    export  data and image files: the encoded squares -> `serving_default` (ten crops) and `center_crop`
            signatures; fc7 features from its `features` signature

From Python:

    import alexnet_tf
    model = alexnet_tf.load("runs/latest")
    for p in model.predict(["photo.jpg", "photos/"]):       # files, folders, glob patterns or encoded bytes
        print(p.path, p.error or list(zip(p.labels, p.scores)))
    model.probabilities(["photo.jpg"])                       # float32 [N, classes], ten crops averaged
    report = model.evaluate(split="val")                     # the run's own data; or data="/data/imagenet"
    print(report["models"][0]["ten_crop"]["top1_error"])

Reports (evaluation JSON) go to `TrainedModel.reports_dir`: RUN/reports/ for a run or an export inside RUN/export/N;
for an export outside a run, a reports/ folder beside its version folders (tensorflow_model_server reads only
numbered folders there).
"""

from __future__ import annotations

import os

from alexnet_tf.errors import ModelError
from alexnet_tf.inference.export_model import ExportModel
from alexnet_tf.inference.model import TrainedModel
from alexnet_tf.inference.run_model import RunModel
from alexnet_tf.runs.rundir import RunDir, is_checkpoint_prefix, run_dir_of_checkpoint
from alexnet_tf.serving.versions import MODEL_FILE, latest_version


def load_model(path: str | os.PathLike) -> TrainedModel:
    """Opens a trained model (a --model argument).

    Accepted: a run directory (its latest checkpoint), a checkpoint prefix inside one (a ckpt-N), a SavedModel
    version folder (saved_model.pb), or a folder of numbered versions (the highest is used).

    Raises:
        ModelError: naming the path and saying what it should be.
    """
    path = os.path.normpath(os.path.expanduser(os.fspath(path)))
    if is_checkpoint_prefix(path):
        return RunModel(run_dir_of_checkpoint(path).path, path)
    if not os.path.exists(path):
        raise ModelError(f"--model {path}: no such file or directory; give a run directory (written by python -m "
                         f"alexnet_tf.train) or a SavedModel export folder such as exports/alexnet/1")
    if not os.path.isdir(path):
        raise ModelError(f"--model {path}: is a file; give a run directory or a SavedModel export folder")
    if os.path.isfile(os.path.join(path, MODEL_FILE)):
        return ExportModel(path)
    if RunDir(path).is_run():
        return RunModel(path)
    latest = latest_version(path)
    if latest:
        return ExportModel(latest)
    raise ModelError(f"--model {path}: neither a run directory (no run config) nor a SavedModel export (no "
                     f"saved_model.pb, no numbered version folders); give the folder python -m alexnet_tf.train "
                     f"wrote, or an export such as exports/alexnet/1")
