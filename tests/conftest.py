import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


class TinyBlock(torch.nn.Module):
    """Attention-like names, so target_modules match as they would in a BERT."""

    def __init__(self, d: int = 12, d_ff: int = 24):
        super().__init__()
        self.query = torch.nn.Linear(d, d)
        self.key = torch.nn.Linear(d, d)
        self.value = torch.nn.Linear(d, d)
        self.norm = torch.nn.LayerNorm(d)
        self.up = torch.nn.Linear(d, d_ff)
        self.down = torch.nn.Linear(d_ff, d)

    def forward(self, x):
        h = self.query(x) * torch.sigmoid(self.key(x)) + self.value(x)
        return x + self.down(torch.relu(self.up(self.norm(h))))


class TinyModel(torch.nn.Module):
    def __init__(self, d: int = 12, layers: int = 2, classes: int = 3):
        super().__init__()
        self.layers = torch.nn.ModuleList([TinyBlock(d) for _ in range(layers)])
        self.classifier = torch.nn.Linear(d, classes)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.classifier(x)


@pytest.fixture
def tiny_model():
    return TinyModel().double()
