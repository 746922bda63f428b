"""Core's own plugins, registered through the same entry points as any other plugin."""
