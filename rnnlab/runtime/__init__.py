"""The lowest layer beside the engine: how rnnlab writes files (atomically) and tunes the process
(malloc). Everything may import it; it imports nothing of rnnlab."""
