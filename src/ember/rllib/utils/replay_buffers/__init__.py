from ember.rllib.utils.replay_buffers.replay_buffer import ReplayBuffer, n_step_transitions

__all__ = ["ReplayBuffer", "n_step_transitions"]
