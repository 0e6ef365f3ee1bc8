"Behaviour of medfound.lung.lidc_relabel: the network, training, retrieval labels, AUC."
import numpy as np
import pytest
import torch
from medfound.lung.lidc_relabel import NoduleNet, augment, train_classifier, train_embedder, retrieve_labels, predict, auc

def _discs(n=48, seed=0):
    g = np.random.default_rng(seed); y = np.arange(n) % 2
    r = np.sqrt(((np.indices((32, 32)) - 15.5) ** 2).sum(0))
    X = np.stack([np.repeat(((r < 6) * (0.9 if t else 0.3))[None], 3, 0) for t in y]) + 0.05 * g.standard_normal((n, 3, 32, 32))
    return X.astype(np.float32), y

def test_shapes_and_bad_input():
    net = NoduleNet(8, out=16)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 16) and net.features(torch.zeros(2, 3, 24, 24)).shape == (2, 32)
    with pytest.raises(ValueError, match="expected"): net(torch.zeros(3, 32, 32))

def test_augment_is_a_symmetry_of_each_image():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    for s in range(5):
        xa = augment(x, torch.Generator().manual_seed(s))
        for a, b in zip(x, xa):
            cands = [a, a.flip(-1), a.flip(-2), a.flip(-1).flip(-2)]
            cands += [c.transpose(-1, -2) for c in cands]
            assert any(torch.equal(b, c) for c in cands)

def test_classifier_and_embedder_learn_separable_images():
    X, y = _discs()
    clf = train_classifier(X, y, steps=25, batch_size=24, seed=0, progress=False)
    assert auc(predict(clf, X), y) > 0.95
    E = predict(train_embedder(X, y, steps=25, batch_size=24, seed=0, progress=False), X)
    lab, share, idx = retrieve_labels(E[:16], E[16:], y[16:], k=3)          # both labels in each half
    assert (lab == y[:16]).mean() >= 0.9

def test_same_seed_same_initial_weights():
    X, y = _discs(16)
    a = train_classifier(X, y, steps=1, lr=0.0, seed=3, progress=False)
    b = train_classifier(X, y, steps=1, lr=0.0, seed=3, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))

def test_retrieve_labels_votes_and_errors():
    ref = np.array([[1, 0], [1, 0.2], [0, 1], [0.2, 1], [0.1, 1]]); lab = np.array([1, 1, 0, 0, 0])
    out, share, idx = retrieve_labels(np.array([[1, 0.1], [0.1, 1]]), ref, lab, k=3)
    assert out.tolist() == [1, 0] and np.allclose(share, [2 / 3, 0])
    with pytest.raises(ValueError, match="between 1"): retrieve_labels(ref, ref, lab, k=0)
    with pytest.raises(ValueError, match="embeddings"): retrieve_labels(ref, ref[:, :1], lab)

def test_bad_training_inputs():
    X, y = _discs(8)
    with pytest.raises(ValueError, match="both labels"): train_embedder(X, np.zeros(8), steps=1)
    with pytest.raises(ValueError, match="must be"): train_classifier(X[:, 0], y, steps=1)
    with pytest.raises(ValueError, match="no training"): train_classifier(X[:0], y[:0], steps=1)
