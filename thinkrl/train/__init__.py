"""Training stages, one readable loop each, side by side over a shared library.

Stage loops (each imports only the library, never another stage's helpers; distill and pipeline
call other stages' entry functions, composing them is their job): rl.py (GRPO family and PPO),
sft.py, rm.py, dpo.py, sample.py, distill.py, pipeline.py, merge.py.

Library: rollout.py (sampling and scoring a step's rollouts), order.py (data order and seeds as
functions of (seed, step)), batching.py (mini- and micro-batches of a rollout batch),
ppo_update.py (the PPO critic's advantages and update), forward.py (training log-probs),
critic.py (the value model), assistant.py (log-probs of a chat example's assistant tokens),
optim.py (AdamW, schedule, the one optimizer step), heldout.py (held-out evaluation),
resume.py (run set-up), checkpoint.py, logger.py, adapters.py ([lora]: the model a stage trains). Data files: thinkrl.data.
"""
