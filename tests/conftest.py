pytest_plugins = ["tests.mosquitto"]
