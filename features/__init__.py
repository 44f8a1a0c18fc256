"""The one feature code path: contract schemas, readers, and the model matrix builder.

Training and serving both import from here; nothing else reads contract files or builds features.
"""
