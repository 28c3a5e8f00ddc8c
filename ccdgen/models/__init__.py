"""Stage 6: energy models (torch / Lightning). Only this layer and the CLI import torch."""
