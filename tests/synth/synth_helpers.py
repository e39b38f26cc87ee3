"""Helpers shared by the synth tests: tiny corpora and untrained or quickly trained teachers."""
import numpy as np


def small_corpus(name: str, n: int, split: str = "train"):
    from raypriv.data import load_corpus

    return load_corpus(name, split=split).head(n)


def quick_teacher(corpus, *, model: str = "small_cnn", epochs: int = 0, seed: int = 0):
    """A Teacher for ``corpus`` trained in-process for ``epochs`` (0: random weights)."""
    import torch
    import torch.nn.functional as F

    from raypriv.models import build_model
    from raypriv.synth import Teacher

    h, _, c = corpus.info.image_shape
    kw = {"in_channels": c, "num_classes": corpus.info.num_classes, "image_size": h}
    torch.manual_seed(seed)
    net = build_model(model, **kw)
    if epochs:
        rows = corpus.ds.take_all()
        x = torch.tensor(np.stack([r["image"] for r in rows])).permute(0, 3, 1, 2).float() / 255
        y = torch.tensor([int(r["label"]) for r in rows])
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        for _ in range(epochs):
            for i in range(0, len(y), 64):
                loss = F.cross_entropy(net(x[i:i + 64]), y[i:i + 64])
                opt.zero_grad()
                loss.backward()
                opt.step()
    return Teacher(model=model, model_kwargs=kw, state=net.state_dict(),
                   manifest={"input_fingerprint": f"test-{epochs}-{seed}"})
