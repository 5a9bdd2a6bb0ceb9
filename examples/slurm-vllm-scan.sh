#!/usr/bin/env bash
# A scan of a large model on a Slurm cluster: one job serves the model with vLLM on a GPU
# node (tensor parallel over its GPUs), the scan runs as an array of CPU tasks pointing at it,
# then one job merges the shards.
#
#   sbatch examples/slurm-vllm-scan.sh serve            # prints the node: gpu-node-17
#   SERVER=http://gpu-node-17:8000/v1 sbatch --array=0-15 examples/slurm-vllm-scan.sh scan
#   sbatch --dependency=afterok:<array job id> --wrap 'miascan merge results/shard-* --out results/all'
#   scancel <serve job id>
#
# The key (if the server is started with one) travels inside the cluster over plain http:
# --allow-plain-http-key says so explicitly; the key itself comes from the environment.
#SBATCH --job-name=miascan-vllm
#SBATCH --time=24:00:00
#SBATCH --requeue
set -euo pipefail

case "${1:?serve or scan}" in
serve)
  # run with: sbatch --gres=gpu:4 --cpus-per-task=16 --mem=200G examples/slurm-vllm-scan.sh serve
  echo "serving on $(hostname)"
  exec vllm serve "${MODEL:-meta-llama/Llama-3.1-70B}" --served-model-name "${NAME:-llama-3.1-70b}" \
    --tensor-parallel-size "${SLURM_GPUS_ON_NODE:-4}" --max-logprobs 20 --max-model-len 4096 \
    --host 0.0.0.0 --port 8000 ${VLLM_API_KEY:+--api-key "$VLLM_API_KEY"}
  ;;
scan)
  N=${SLURM_ARRAY_TASK_COUNT:?run as a job array}
  I=${SLURM_ARRAY_TASK_ID:?run as a job array}
  export OPENAI_API_KEY=${VLLM_API_KEY:-}
  exec miascan scan "${COLLECTION:-/data/collection}" --model "${SERVER:?SERVER=http://NODE:8000/v1}" \
    --served-model "${NAME:-llama-3.1-70b}" --allow-plain-http-key \
    --tokenizer "${TOKENIZER:-meta-llama/Llama-3.1-70B}" \
    --calibration "${CALIBRATION:-/data/calibration.json}" --concurrency 16 \
    --shard "$I/$N" --out "results/shard-$I" --resume --quiet
  ;;
esac
