"""The names of the metrics Tune fills in itself, as Ray Tune names them (``ray.tune.result``)."""

from __future__ import annotations

TRAINING_ITERATION = "training_iteration"
TIME_THIS_ITER_S = "time_this_iter_s"
TIME_TOTAL_S = "time_total_s"
TIMESTEPS_TOTAL = "timesteps_total"
EPISODES_TOTAL = "episodes_total"
TIMESTAMP = "timestamp"
DONE = "done"
SHOULD_CHECKPOINT = "should_checkpoint"
TRIAL_ID = "trial_id"
EXPERIMENT_TAG = "experiment_tag"
NODE_IP = "node_ip"
PID = "pid"
HOSTNAME = "hostname"
DATE = "date"
CONFIG = "config"
ITERATIONS_SINCE_RESTORE = "iterations_since_restore"
TIME_SINCE_RESTORE = "time_since_restore"
TIMESTEPS_SINCE_RESTORE = "timesteps_since_restore"
CHECKPOINT_DIR_NAME = "checkpoint_dir_name"

# Filled in for every result; the progress table leaves them out of its metric columns.
AUTO_RESULT_KEYS = frozenset(
    {
        TRAINING_ITERATION,
        TIME_THIS_ITER_S,
        TIME_TOTAL_S,
        TIMESTAMP,
        DONE,
        TRIAL_ID,
        EXPERIMENT_TAG,
        NODE_IP,
        PID,
        HOSTNAME,
        DATE,
        CONFIG,
        ITERATIONS_SINCE_RESTORE,
        TIME_SINCE_RESTORE,
        TIMESTEPS_SINCE_RESTORE,
        CHECKPOINT_DIR_NAME,
        SHOULD_CHECKPOINT,
    }
)

# The files of a trial's folder and of an experiment's folder, in Ray's layout.
EXPR_RESULT_FILE = "result.json"
EXPR_PROGRESS_FILE = "progress.csv"
EXPR_PARAM_FILE = "params.json"
EXPR_PARAM_PICKLE_FILE = "params.pkl"
EXPR_ERROR_FILE = "error.txt"
EXPR_ERROR_PICKLE_FILE = "error.pkl"
