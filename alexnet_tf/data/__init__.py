"""Data: sources (folder, TFRecord, tfds, generated demo), offline preparation, statistics and the input pipelines."""

from alexnet_tf.data.pipeline import eval_dataset, parse_record, record_dataset, train_dataset
from alexnet_tf.data.prepared import PreparedData, load_prepared
from alexnet_tf.data.shards import prepare_data, prepare_source
from alexnet_tf.data.sources import DataError
from alexnet_tf.data.stats import DatasetStats, StatsAccumulator, StatsError
from alexnet_tf.data.vocab import Vocabulary, VocabularyError

__all__ = ["DataError", "DatasetStats", "PreparedData", "StatsAccumulator", "StatsError", "Vocabulary",
           "VocabularyError", "eval_dataset", "load_prepared", "parse_record", "prepare_data",
           "prepare_source", "record_dataset", "train_dataset"]
