"""The runner layer: one run loop (`loop.RunLoop`) and one small phase per family (`control`, ...)."""
