"""taskq-example-plugin: a worked example of a third-party taskq plugin.

It offers the ``jsonz`` serializer (zlib-compressed JSON) and the ``taskq example-hello``
command. Nothing is imported here: taskq imports :mod:`taskq_example_plugin.plugin`
through the entry point, and the drivers only when they are selected.
"""
