"""Tools the model can call during a rollout: a tool maps call text to result text."""
