"""RLlib's A3C: two env-runner actors each sample CartPole-v1 and compute the actor-critic
gradients of their own fragment; the learner applies each runner's gradients as they arrive
and sends that runner the new weights, so runners never wait for each other. Trained until
the greedy policy balances the pole (mean return 475 over 10 episodes).
"""

import time

import ember as ray
from ember.rllib.algorithms.a3c import A3CConfig

THRESHOLD = 475.0  # greedy evaluation, 10 episodes
MAX_ITERATIONS = 60  # 2,000 env steps each

ray.init(num_cpus=2)

config = (
    A3CConfig()
    .environment("CartPole-v1")
    .env_runners(num_env_runners=2, num_envs_per_env_runner=8, rollout_fragment_length=50)
    .training(lr=0.001, gamma=0.99, entropy_coeff=0.0, vf_loss_coeff=0.5, grad_clip=0.5)
    .debugging(seed=0)
)
algo = config.build_algo()
start = time.perf_counter()
for _ in range(MAX_ITERATIONS):
    result = algo.train()
    stats = result["learners"]["default_policy"]
    greedy = algo.evaluate()["evaluation"]["env_runners"]["episode_return_mean"]
    print(
        f"iter {result['training_iteration']:2d}  "
        f"steps {result['num_env_steps_sampled_lifetime']:6d}  "
        f"return {result['env_runners']['episode_return_mean']:6.1f}  "
        f"greedy {greedy:6.1f}  "
        f"gradients applied {stats['weights_version']:4d}  "
        f"staleness {stats['weights_staleness']:.2f}  "
        f"{time.perf_counter() - start:5.1f}s"
    )
    if greedy >= THRESHOLD:
        break
algo.stop()
assert greedy >= THRESHOLD, greedy
ray.shutdown()
