"""Qt-free core: data, engine, run folders, checkpoints, devices, images, events.

Nothing in this package imports Qt; a test enforces it.
"""
