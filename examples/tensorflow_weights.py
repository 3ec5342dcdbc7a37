"""The seed's TensorFlow program: actors that share weights, not graphs.

From Ray's "Using Ray with TensorFlow" page: pickling a TensorFlow graph works badly and
rebuilding one is slow, so each actor builds the same graph once (TensorFlow 1 style, through
``tf.compat.v1``) and only the weights travel, as a dict of numpy arrays from
``ray.experimental.TensorFlowVariables``. Each round the driver puts the weights in the object
store once, every actor takes one gradient step on its own batch of data, and the driver
averages the weights they return: the parameter-averaging loop. The data follow
``y = 0.1 * x + 0.3``, so the weights converge to w = 0.1, b = 0.3.

Run:  python examples/tensorflow_weights.py  (needs TensorFlow: pip install 'ember[tensorflow]')
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up notices

import numpy as np
import tensorflow as tf

import ember as ray

BATCH_SIZE = 100
NUM_BATCHES = 2
NUM_ITERS = 201


class Network:
    def __init__(self, x, y):
        # The graph and session of TensorFlow 1, in this actor's process.
        tf.compat.v1.disable_eager_execution()
        # Seed TensorFlow to make the script deterministic.
        tf.compat.v1.set_random_seed(0)
        # Define the inputs.
        self.x_data = tf.constant(x, dtype=tf.float32)
        self.y_data = tf.constant(y, dtype=tf.float32)
        # Define the weights and computation.
        w = tf.Variable(tf.compat.v1.random_uniform([1], -1.0, 1.0))
        b = tf.Variable(tf.zeros([1]))
        y = w * self.x_data + b
        # Define the loss.
        self.loss = tf.reduce_mean(tf.square(y - self.y_data))
        optimizer = tf.compat.v1.train.GradientDescentOptimizer(0.5)
        self.grads = optimizer.compute_gradients(self.loss)
        self.train = optimizer.apply_gradients(self.grads)
        # Define the weight initializer and session (one thread: actors share the CPUs).
        init = tf.compat.v1.global_variables_initializer()
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=1, inter_op_parallelism_threads=1
        )
        self.sess = tf.compat.v1.Session(config=config)
        # Additional code for setting and getting the weights.
        self.variables = ray.experimental.TensorFlowVariables(self.loss, self.sess)
        # Return all of the data needed to use the network.
        self.sess.run(init)

    # Train the network for one step and return the new weights.
    def step(self, weights):
        # Set the weights in the network.
        self.variables.set_weights(weights)
        # Do one step of training.
        self.sess.run(self.train)
        # Return the new weights.
        return self.variables.get_weights()

    def get_weights(self):
        return self.variables.get_weights()


# A remote function for generating fake data.
@ray.remote(num_returns=2)
def generate_fake_x_y_data(num_data, seed=0):
    # Seed numpy to make the script deterministic.
    np.random.seed(seed)
    x = np.random.rand(num_data)
    y = x * 0.1 + 0.3
    return x, y


def main():
    ray.init(num_cpus=2)

    # Generate some training data.
    batch_ids = [generate_fake_x_y_data.remote(BATCH_SIZE, seed=i) for i in range(NUM_BATCHES)]
    x_ids = [x_id for x_id, y_id in batch_ids]
    y_ids = [y_id for x_id, y_id in batch_ids]

    # Create actors to store the networks.
    remote_network = ray.remote(Network)
    actor_list = [remote_network.remote(x_ids[i], y_ids[i]) for i in range(NUM_BATCHES)]

    # Get initial weights of some actor.
    weights = ray.get(actor_list[0].get_weights.remote())

    # Do some steps of training.
    for iteration in range(NUM_ITERS):
        # Put the weights in the object store once, rather than once per actor call.
        weights_id = ray.put(weights)
        # Call the actors in parallel.
        new_weights_ids = [actor.step.remote(weights_id) for actor in actor_list]
        # Get all of the weights.
        new_weights_list = ray.get(new_weights_ids)
        # Average the dicts of weights, key by key.
        weights = {
            variable: sum(weight_dict[variable] for weight_dict in new_weights_list) / NUM_BATCHES
            for variable in new_weights_list[0]
        }
        # The weights converge to 0.1 and 0.3, the values used in generate_fake_x_y_data.
        if iteration % 20 == 0:
            print(f"Iteration {iteration}: weights are {weights}")

    w, b = (float(value[0]) for value in weights.values())
    assert abs(w - 0.1) < 0.01 and abs(b - 0.3) < 0.01, (w, b)
    ray.shutdown()
    print(f"tensorflow_weights: w = {w:.4f}, b = {b:.4f} after {NUM_ITERS} rounds, as expected")


if __name__ == "__main__":
    main()
