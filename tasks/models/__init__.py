"""Small named flax (linen) modules, one per task family."""

from tasks.models.autoencoder import MLPAutoencoder
from tasks.models.cnn import ConvNet
from tasks.models.mlp import MLP
from tasks.models.rnn import RNNLM
from tasks.models.transformer import TransformerLM
from tasks.models.vit import ViT

__all__ = ["MLP", "ConvNet", "MLPAutoencoder", "RNNLM", "TransformerLM", "ViT"]
