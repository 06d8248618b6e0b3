"""sockspec's pytest entry: the plugin that ties tests to clauses and runs each in a sandbox."""

pytest_plugins = ["harness.plugin", "harness.fixtures"]
