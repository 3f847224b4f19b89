"""Where the PyTorch reference's step spends its time, op by op (`torch.profiler`).

The counterpart of `step_profile.py` for the other side of `step_speed.py`:
the same workload (MiniLM-L6 shape, 16 sequences of 128 tokens per task, two
tasks) and the same reference step (`torch_reference.train_step`: fused QKV,
SDPA, fused AdamW, foreach clipping), eager, random initial weights (speed
does not depend on them). Two warm steps, then `--steps` steps under
`torch.profiler`; prints each aten op's self CPU time per step, the largest
first, and their total. Timing needs the machine to itself.

  python benchmarks/torch_step_profile.py --dropout 0 [--top 20] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dropout", type=float, default=0.1)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--top", type=int, default=20)
  parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
  parser.add_argument("--batch-per-task", type=int, default=16)
  parser.add_argument("--length", type=int, default=128)
  parser.add_argument("--tiny", action="store_true", help="a 2-layer width-64 encoder")
  parser.add_argument("--json", help="also write {op: seconds per step} here")
  args = parser.parse_args(argv)
  import torch
  from torch.profiler import ProfilerActivity, profile

  import step_speed
  import torch_reference

  torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  config = step_speed.encoder_config(args.dropout, tiny=args.tiny)
  batches = [{task: {key: (torch.from_numpy(v).long() if key == "labels" else
                           torch.from_numpy(v)) for key, v in arrays.items()}
              for task, arrays in batch.items()}
             for batch in step_speed.make_batches(args.steps + 2, args.batch_per_task,
                                                  args.length, vocab=config.vocab_size)]
  model = torch_reference.MultiTaskBert(config, step_speed.NUM_CLASSES, step_speed.NUM_TAGS,
                                        args.dropout).train()
  opt = step_speed.optimizer_config()
  optimizer = torch_reference.make_optimizer(model, opt)

  def step(i):
    torch_reference.train_step(model, optimizer, batches[i], opt["learning_rate"],
                               opt["clip_norm"])

  step(0)
  step(1)
  with profile(activities=[ProfilerActivity.CPU]) as prof:
    for i in range(2, len(batches)):
      step(i)
  per_op = {event.key: event.self_cpu_time_total / 1e6 / args.steps
            for event in prof.key_averages() if event.self_cpu_time_total > 0}
  total = sum(per_op.values())
  print(f"PyTorch eager, dropout {args.dropout}: ops' self CPU time {total:.3f} s per step "
        f"({args.steps} profiled steps, {torch.get_num_threads()} threads)")
  for name, seconds in sorted(per_op.items(), key=lambda kv: -kv[1])[:args.top]:
    print(f"  {1e3 * seconds:8.1f} ms  {100 * seconds / total:5.1f}%  {name}")
  result = {"dropout": args.dropout, "total_s": total, "per_op_s": per_op}
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=1)
  return result


if __name__ == "__main__":
  main()
