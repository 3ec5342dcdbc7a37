"""RLlib's API: PPO on CartPole-v1 with two env-runner actors, trained until the policy's
training return reaches a threshold, then evaluated greedily, saved and restored.

`PPOConfig().environment(...).env_runners(...).training(...).debugging(seed=...)` builds the
algorithm; each `algo.train()` samples with every env runner (weights sent once through the
object store) and runs minibatch SGD epochs on the clipped surrogate loss.
"""

import tempfile
import time

import ember as ray
from ember.rllib.algorithms.algorithm import Algorithm
from ember.rllib.algorithms.ppo import PPOConfig

THRESHOLD = 150.0  # training episode_return_mean (last 100 episodes)
MAX_ITERATIONS = 40

ray.init(num_cpus=2)

config = (
    PPOConfig()
    .environment("CartPole-v1")
    .env_runners(num_env_runners=2, num_envs_per_env_runner=4)
    .training(lr=0.0003, train_batch_size=2000, minibatch_size=128, num_epochs=10)
    .training(model={"fcnet_hiddens": [64, 64], "fcnet_activation": "tanh"})
    .evaluation(evaluation_duration=10)
    .debugging(seed=1)
)
algo = config.build_algo()
start = time.perf_counter()
for _ in range(MAX_ITERATIONS):
    result = algo.train()
    runners = result["env_runners"]
    stats = result["learners"]["default_policy"]
    print(
        f"iter {result['training_iteration']:2d}  "
        f"steps {result['num_env_steps_sampled_lifetime']:6d}  "
        f"return {runners['episode_return_mean']:6.1f}  "
        f"len {runners['episode_len_mean']:6.1f}  "
        f"kl {stats['mean_kl_loss']:.4f}  "
        f"{time.perf_counter() - start:5.1f}s"
    )
    if runners["episode_return_mean"] >= THRESHOLD:
        break
assert runners["episode_return_mean"] >= THRESHOLD, runners

evaluation = algo.evaluate()["evaluation"]["env_runners"]
print(
    f"greedy evaluation over {evaluation['num_episodes']} episodes: "
    f"mean return {evaluation['episode_return_mean']:.1f}"
)

obs = [0.01, -0.02, 0.03, 0.04]
action = algo.compute_single_action(obs)
with tempfile.TemporaryDirectory() as folder:
    path = algo.save(folder)
    algo.stop()  # its env runners hold the 2 CPUs the restored algorithm's runners need
    restored = Algorithm.from_checkpoint(path)
    assert restored.compute_single_action(obs) == action
    print(f"restored from {path}: greedy action for {obs} is {action}")
    restored.stop()

ray.shutdown()
