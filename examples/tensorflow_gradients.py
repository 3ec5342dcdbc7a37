"""The seed's data-parallel TensorFlow program: actors compute gradients, the driver applies them.

From Ray's "Using Ray with TensorFlow" page, its second loop: every actor builds the same graph
once (TensorFlow 1 style, through ``tf.compat.v1``) over its own batch of data. Each round the
driver puts its weights in the object store once; every actor loads them with
``ray.experimental.TensorFlowVariables`` and returns the numerical gradients of its loss; the
driver averages the gradients and applies them to its own copy of the network by feeding them
in place of the symbolic gradients. The data follow ``y = 0.1 * x + 0.3``, so the weights
converge to w = 0.1, b = 0.3.

Run:  python examples/tensorflow_gradients.py  (needs TensorFlow: pip install 'ember[tensorflow]')
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
        # The graph and session of TensorFlow 1, in this process.
        tf.compat.v1.disable_eager_execution()
        # Seed TensorFlow to make the script deterministic.
        tf.compat.v1.set_random_seed(0)
        # Define the inputs.
        x_data = tf.constant(x, dtype=tf.float32)
        y_data = tf.constant(y, dtype=tf.float32)
        # Define the weights and computation.
        w = tf.Variable(tf.compat.v1.random_uniform([1], -1.0, 1.0))
        b = tf.Variable(tf.zeros([1]))
        y = w * x_data + b
        # Define the loss.
        self.loss = tf.reduce_mean(tf.square(y - y_data))
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

    # Load the weights and return the gradients of the loss on this actor's batch.
    def step(self, weights):
        # Set the weights in the network.
        self.variables.set_weights(weights)
        # Compute the gradients; TensorFlow pairs each with its variable, keep only the values.
        actual_grads = self.sess.run([grad[0] for grad in self.grads])
        return actual_grads

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
    # Generate some test data.
    x_test, y_test = ray.get(generate_fake_x_y_data.remote(BATCH_SIZE, seed=NUM_BATCHES))

    # Create actors to store the networks, and a local network to apply the gradients.
    remote_network = ray.remote(Network)
    actor_list = [remote_network.remote(x_ids[i], y_ids[i]) for i in range(NUM_BATCHES)]
    local_network = Network(x_test, y_test)

    # Get initial weights of local network.
    weights = local_network.get_weights()

    # Do some steps of training.
    for iteration in range(NUM_ITERS):
        # Put the weights in the object store once, rather than once per actor call.
        weights_id = ray.put(weights)
        # Call the actors in parallel.
        gradients_ids = [actor.step.remote(weights_id) for actor in actor_list]
        # Get all of the gradients.
        gradients_list = ray.get(gradients_ids)

        # Take the mean of each gradient over the actors.
        mean_grads = [
            sum(gradients[i] for gradients in gradients_list) / len(gradients_list)
            for i in range(len(gradients_list[0]))
        ]

        # Feed the numerical gradients in place of the symbolic ones and apply them.
        feed_dict = {
            grad[0]: mean_grad
            for (grad, mean_grad) in zip(local_network.grads, mean_grads, strict=True)
        }
        local_network.sess.run(local_network.train, feed_dict=feed_dict)
        weights = local_network.get_weights()

        # The weights converge to 0.1 and 0.3, the values used in generate_fake_x_y_data.
        if iteration % 20 == 0:
            print(f"Iteration {iteration}: weights are {weights}")

    w, b = (float(value[0]) for value in weights.values())
    assert abs(w - 0.1) < 0.01 and abs(b - 0.3) < 0.01, (w, b)
    # The test data follow the same line, so the local network's loss on them is near zero.
    test_loss = local_network.sess.run(local_network.loss)
    assert test_loss < 1e-4, test_loss
    ray.shutdown()
    print(f"tensorflow_gradients: w = {w:.4f}, b = {b:.4f} after {NUM_ITERS} rounds, as expected")


if __name__ == "__main__":
    main()
