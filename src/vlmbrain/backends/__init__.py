"""Optional compute backends, kept outside the numpy-only math core.

``vlmbrain.encoding`` reaches them only through ``importlib.import_module`` when a user
asks for ``backend="torch"``, so importing the core never imports torch.
"""
