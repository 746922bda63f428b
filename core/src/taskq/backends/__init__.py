"""Result backend base classes; concrete backends live in plugins."""
