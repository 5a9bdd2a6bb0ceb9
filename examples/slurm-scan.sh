#!/usr/bin/env bash
# One scan split over a Slurm job array: each array task scans one shard of the collection
# (documents are split by a hash of their id), then one dependent job merges the shards.
#
#   sbatch --array=0-15 examples/slurm-scan.sh
#   sbatch --dependency=afterok:<array job id> --wrap \
#     'miascan merge results/shard-* --out results/all'
#
# A task that dies (pre-emption, time limit) is resubmitted as it is: --resume continues
# its shard from the last committed group.
#SBATCH --job-name=miascan-scan
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=24:00:00
#SBATCH --requeue
set -euo pipefail

COLLECTION=${COLLECTION:-/data/collection}
MODEL=${MODEL:-/models/Meta-Llama-3-8B.Q4_K_M.gguf}
CALIBRATION=${CALIBRATION:-/data/calibration.json}
N=${SLURM_ARRAY_TASK_COUNT:?run as a job array}
I=${SLURM_ARRAY_TASK_ID:?run as a job array}

miascan scan "$COLLECTION" --model "$MODEL" --calibration "$CALIBRATION" \
  --threads "${SLURM_CPUS_PER_TASK:-8}" --shard "$I/$N" \
  --out "results/shard-$I" --resume --quiet
