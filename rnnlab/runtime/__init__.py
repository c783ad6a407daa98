"""The lowest layer beside the engine: how rnnlab writes files (atomically), tunes the process
(malloc) and counts its cores. Everything may import it; it imports nothing of rnnlab."""
