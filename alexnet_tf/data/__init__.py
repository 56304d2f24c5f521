"""Data: sources (folder, TFRecord, tfds, generated demo), offline preparation, statistics and the input pipelines."""

from alexnet_tf.data.stats import DatasetStats, StatsAccumulator, StatsError
from alexnet_tf.data.vocab import Vocabulary, VocabularyError

__all__ = ["DatasetStats", "StatsAccumulator", "StatsError", "Vocabulary", "VocabularyError"]
