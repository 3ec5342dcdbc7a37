"""RLlib's API: DQN on CartPole-v1 in the algorithm's own process, trained until a greedy
evaluation reaches a mean return of 475, then saved and restored.

Each `algo.train()` samples 256 epsilon-greedy steps into the replay buffer and runs 128
gradient steps on replayed minibatches of 64 (`training_intensity` 32: 32 replayed steps per
sampled one); the target network follows the online one after each iteration. Double-Q
targets, a dueling head and 3-step returns are on.
"""

import tempfile
import time

import ember as ray
from ember.rllib.algorithms.algorithm import Algorithm
from ember.rllib.algorithms.dqn import DQNConfig

THRESHOLD = 475.0  # greedy mean return over 10 episodes
MAX_STEPS = 100_000

ray.init(num_cpus=2)

config = (
    DQNConfig()
    .environment("CartPole-v1")
    .env_runners(num_env_runners=0, rollout_fragment_length=256)
    .training(
        lr=0.0023,
        train_batch_size=64,
        training_intensity=32,
        replay_buffer_config={"capacity": 100_000},
        num_steps_sampled_before_learning_starts=1000,
        target_network_update_freq=256,
        epsilon=[[0, 1.0], [8000, 0.04]],
        grad_clip=10.0,
        double_q=True,
        dueling=True,
        n_step=3,
        model={"fcnet_hiddens": [256, 256], "fcnet_activation": "relu"},
    )
    .debugging(seed=0)
)
algo = config.build_algo()
start = time.perf_counter()
steps, greedy = 0, 0.0
while steps < MAX_STEPS and greedy < THRESHOLD:
    result = algo.train()
    steps = result["num_env_steps_sampled_lifetime"]
    if result["training_iteration"] % 20 == 0:  # every 5,120 env steps
        greedy = algo.evaluate()["evaluation"]["env_runners"]["episode_return_mean"]
        stats = result["learners"]["default_policy"]
        print(
            f"steps {steps:6d}  training return "
            f"{result['env_runners']['episode_return_mean']:6.1f}  greedy {greedy:6.1f}  "
            f"epsilon {stats['curr_epsilon']:.2f}  q {stats['qf_mean']:6.1f}  "
            f"{time.perf_counter() - start:5.1f}s"
        )
assert greedy >= THRESHOLD, greedy

obs = [0.01, -0.02, 0.03, 0.04]
action = algo.compute_single_action(obs)
with tempfile.TemporaryDirectory() as folder:
    path = algo.save(folder)  # Q and target weights, optimizer, counters (not the buffer)
    algo.stop()
    restored = Algorithm.from_checkpoint(path)
    assert restored.compute_single_action(obs) == action
    print(f"restored from {path}: greedy action for {obs} is {action}")
    restored.stop()

ray.shutdown()
