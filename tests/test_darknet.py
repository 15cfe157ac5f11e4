import struct

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from splitcodec import models  # noqa: E402
from splitcodec.models.darknet import (  # noqa: E402
    CFG_DIR, DarknetNet, DarknetWeightsError, MaxPool, Section, Shortcut, load_darknet_weights, parse_cfg,
    save_darknet_weights,
)

SMALL_CFG = """
[net]
width=8
height=8
channels=3

[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky

[convolutional]
filters=2
size=1
stride=2
pad=1
activation=linear

[maxpool]
size=2
stride=2

[connected]
output=3
activation=linear
"""

# (layer, tensor, count) in the order a .weights file stores them, computed by hand for SMALL_CFG
SMALL_LAYOUT = [(0, "biases", 4), (0, "scales", 4), (0, "rolling_mean", 4), (0, "rolling_variance", 4),
                (0, "weights", 4 * 3 * 3 * 3), (1, "biases", 2), (1, "weights", 2 * 4), (3, "biases", 3),
                (3, "weights", 3 * 2 * 2 * 2)]


def _write_weights(path, layout, *, major=0, minor=2, extra=0, drop=0):
    """A .weights file written from the format description: values 1000*k + 0, 1, 2... per tensor k."""
    head = struct.pack("<3i", major, minor, 5) + (struct.pack("<q", 123) if major * 10 + minor >= 2 else struct.pack("<i", 123))
    body = np.concatenate([1000 * k + np.arange(n, dtype=np.float32) for k, (_, _, n) in enumerate(layout)])
    data = head + body.astype("<f4").tobytes() + b"\x00" * extra
    path.write_bytes(data[: len(data) - drop] if drop else data)


def test_known_values_land_in_the_right_tensors(tmp_path):
    net = DarknetNet(SMALL_CFG)
    p = tmp_path / "small.weights"
    _write_weights(p, SMALL_LAYOUT)
    header = load_darknet_weights(net, p)
    assert header == {"major": 0, "minor": 2, "revision": 5, "seen": 123}
    c0, c1, fc = net.layers[0], net.layers[1], net.layers[3]
    expect = lambda k, n: 1000 * k + np.arange(n, dtype=np.float32)  # noqa: E731
    np.testing.assert_array_equal(c0.bn.bias.detach(), expect(0, 4))
    np.testing.assert_array_equal(c0.bn.weight.detach(), expect(1, 4))
    np.testing.assert_array_equal(c0.bn.running_mean, expect(2, 4))
    np.testing.assert_array_equal(c0.bn.running_var, expect(3, 4))
    np.testing.assert_array_equal(c0.conv.weight.detach().reshape(-1), expect(4, 108))
    assert c0.conv.weight[1, 2, 0, 1] == 4000 + 1 * 27 + 2 * 9 + 0 * 3 + 1  # (filter, channel, row, col), C order
    np.testing.assert_array_equal(c1.conv.bias.detach(), expect(5, 2))
    np.testing.assert_array_equal(c1.conv.weight.detach().reshape(-1), expect(6, 8))
    np.testing.assert_array_equal(fc.fc.bias.detach(), expect(7, 3))
    assert fc.fc.weight[2, 5] == 8000 + 2 * 8 + 5  # (output, input) row-major


def test_old_header_with_int32_seen(tmp_path):
    p = tmp_path / "old.weights"
    _write_weights(p, SMALL_LAYOUT, major=0, minor=1)
    assert load_darknet_weights(DarknetNet(SMALL_CFG), p)["seen"] == 123


def test_short_file_names_the_layer(tmp_path):
    p = tmp_path / "short.weights"
    _write_weights(p, SMALL_LAYOUT, drop=8)
    with pytest.raises(DarknetWeightsError, match=r"layer 3 \(connected\)"):
        load_darknet_weights(DarknetNet(SMALL_CFG), p)


def test_long_file_is_an_error(tmp_path):
    p = tmp_path / "long.weights"
    _write_weights(p, SMALL_LAYOUT, extra=8)
    with pytest.raises(DarknetWeightsError, match="8 bytes left after the last layer"):
        load_darknet_weights(DarknetNet(SMALL_CFG), p)


def test_missing_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_darknet_weights(DarknetNet(SMALL_CFG), tmp_path / "nope.weights")


def test_shipped_cfgs_match_darknet_layer_counts_and_file_sizes():
    from splitcodec.models.darknet import _weight_tensors

    expected = {"yolov3.cfg": (107, 248_007_048)}  # the official yolov3.weights is 248,007,048 bytes
    for cfg, (layers, size) in expected.items():
        net = DarknetNet(CFG_DIR / cfg)
        assert len(net.layers) == layers
        assert 20 + 4 * sum(t.numel() for l in net.layers for _, t in _weight_tensors(l)) == size
    assert len(DarknetNet(CFG_DIR / "vgg-16.cfg").layers) == 25
    assert len(DarknetNet(CFG_DIR / "resnet50.cfg").layers) == 69


@pytest.mark.parametrize("name,split,shape", [("yolov3", "layer12", (256, 52, 52)),
                                              ("vgg16_darknet", "layer6", (128, 56, 56)),
                                              ("resnet50_darknet", "layer21", (512, 32, 32)),
                                              ("vgg16", "features.9", (128, 56, 56)),
                                              ("resnet50", "layer2.1", (512, 32, 32))])
def test_paper_split_shapes(name, split, shape):
    s = models.split_model(name, weights="random")
    assert s.split == split and s.feature_shape == shape
    assert dict(models.list_splits(name))[split] == shape


def test_yolov3_weights_round_trip_and_split(tmp_path):
    torch.manual_seed(0)
    net = DarknetNet(CFG_DIR / "yolov3.cfg")
    for p in net.parameters():
        torch.nn.init.normal_(p, 0, 0.05)
    p = tmp_path / "yolov3.weights"
    save_darknet_weights(net, p)
    assert p.stat().st_size == 248_007_048
    s = models.split_model("yolov3", weights=p, progress=False)
    for a, b in zip(net.parameters(), s.model.parameters()):
        assert torch.equal(a, b)
    x = torch.rand(1, 3, 160, 160)
    with torch.no_grad():
        heads = s.tail(s.head(x))
        ref = s.model(x)
    assert [h.shape[1:] for h in heads] == [(255, 5, 5), (255, 10, 10), (255, 20, 20)]
    assert all(torch.equal(a, b) for a, b in zip(heads, ref))


@pytest.mark.parametrize("name,size", [("yolov3", 96), ("resnet50_darknet", 256), ("vgg16_darknet", 256),
                                       ("resnet50", 64), ("vgg16", 64)])
def test_tail_of_head_equals_model_for_every_split(name, size):
    torch.manual_seed(1)
    model = models.get_model(name, weights="random")
    x = torch.rand(1, 3, size, size)
    names = model.unit_names()
    with torch.no_grad():
        full = model(x)
        h = x
        for k in range(len(names)):
            h = model.run_units(h, k, k + 1)
            tail = model.run_units(h, k + 1, None)
            if isinstance(full, list):
                assert all(torch.equal(a, b) for a, b in zip(tail, full)), names[k]
            else:
                assert torch.equal(tail, full), names[k]


def test_darknet_shortcut_with_different_shapes_matches_darknet_loop():
    torch.manual_seed(2)
    add = torch.randn(1, 3, 8, 8)  # the 'from' layer: larger, fewer channels
    x = torch.randn(1, 5, 4, 4)
    layer = Shortcut(Section("shortcut", {"from": "-2", "activation": "linear"}), 2)
    out = layer(x, {0: add})
    ref = x.clone()
    stride, sample = 8 // 4, 1
    for k in range(3):
        for j in range(4):
            for i in range(4):
                ref[0, k, j * sample, i * sample] += add[0, k, j * stride, i * stride]
    assert torch.allclose(out, ref)


def test_darknet_maxpool_padding():
    mp = MaxPool(Section("maxpool", {"size": "2", "stride": "1"}))
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = mp(x, {})
    assert y.shape == (1, 1, 4, 4)  # Darknet pads size - 1 (here on the right/bottom)
    assert y[0, 0, 3, 3] == 15 and y[0, 0, 0, 0] == 5
    mp2 = MaxPool(Section("maxpool", {"size": "2", "stride": "2"}))
    assert mp2(torch.zeros(1, 1, 13, 13), {}).shape == (1, 1, 7, 7)


def test_cfg_errors():
    with pytest.raises(ValueError, match=r"\[net\]"):
        parse_cfg("[convolutional]\nfilters=1\n")
    with pytest.raises(ValueError, match="unsupported layer type"):
        DarknetNet("[net]\nwidth=8\nheight=8\n[lstm]\n")
    with pytest.raises(ValueError, match="refers to layer"):
        DarknetNet("[net]\nwidth=8\nheight=8\n[route]\nlayers=5\n")
    with pytest.raises(ValueError, match="key=value"):
        parse_cfg("[net]\nwidth\n")


def test_darknet_default_weights_are_not_bundled():
    from splitcodec.errors import WeightsUnavailableError

    for call in (lambda: models.get_model("yolov3", weights="DEFAULT"), lambda: models.split_model("yolov3")):
        with pytest.raises(WeightsUnavailableError, match=r"--weights PATH .*or --weights random"):
            call()


# --- layer semantics the shipped cfgs do not hit (issue #11), each against Darknet's C code by hand ----------

def test_connected_with_batch_norm_applies_biases_after_normalising(tmp_path):
    cfg = "[net]\nwidth=2\nheight=1\nchannels=1\n[connected]\noutput=2\nbatch_normalize=1\nactivation=linear\n"
    net = DarknetNet(cfg)
    # .weights order for a connected layer with BN: biases, weights, scales, rolling_mean, rolling_variance
    biases, weights = np.array([0.5, -1.0]), np.array([[1.0, 2.0], [3.0, -1.0]])
    scales, mean, var = np.array([2.0, 0.5]), np.array([1.0, -2.0]), np.array([4.0, 0.25])
    p = tmp_path / "c.weights"
    body = np.concatenate([biases, weights.ravel(), scales, mean, var]).astype("<f4")
    p.write_bytes(struct.pack("<3iq", 0, 2, 5, 0) + body.tobytes())
    load_darknet_weights(net, p)
    x = np.array([0.25, -0.75])
    # forward_connected_layer: gemm, then normalize (sqrt(var) + 1e-6), scale, add biases
    expected = scales * (weights @ x - mean) / (np.sqrt(var) + 1e-6) + biases
    with torch.no_grad():
        out = net(torch.tensor(x, dtype=torch.float32).view(1, 1, 1, 2)).flatten().numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_maxpool_size_defaults_to_the_stride():
    mp = MaxPool(Section("maxpool", {"stride": "2"}))
    assert (mp.size, mp.padding) == (2, 1)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert mp(x, {}).flatten().tolist() == [5.0, 7.0, 13.0, 15.0]


def test_upsample_scale_and_reverse_stride():
    x = torch.arange(4.0).view(1, 1, 2, 2)
    up = DarknetNet("[net]\nwidth=2\nheight=2\nchannels=1\n[upsample]\nstride=2\nscale=0.5\n")
    with torch.no_grad():
        y = up(x)
    # upsample_cpu: out[j][i] = scale * in[j / stride][i / stride]
    assert y[0, 0].tolist() == [[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5], [1.0, 1.0, 1.5, 1.5], [1.0, 1.0, 1.5, 1.5]]
    down = DarknetNet("[net]\nwidth=4\nheight=4\nchannels=1\n[upsample]\nstride=-2\nscale=1\n")
    assert down.shapes[0] == (1, 2, 2)
    with torch.no_grad():
        z = down(torch.arange(16.0).view(1, 1, 4, 4))
    assert z[0, 0].tolist() == [[10.0, 18.0], [42.0, 50.0]]  # reverse: the sum of each 2x2 block


def test_shortcut_alpha_beta():
    torch.manual_seed(3)
    x, add = torch.randn(1, 2, 3, 3), torch.randn(1, 2, 3, 3)
    layer = Shortcut(Section("shortcut", {"from": "-2", "alpha": "0.5", "beta": "-2", "activation": "linear"}), 2)
    assert torch.allclose(layer(x, {0: add}), 0.5 * x - 2 * add)
    big = torch.randn(1, 1, 6, 6)
    out = layer(x, {0: big})
    ref = x.clone()
    ref[0, 0, :, :] = 0.5 * x[0, 0] - 2 * big[0, 0, ::2, ::2]  # common channel only; the rest is the input
    assert torch.allclose(out, ref)


def test_training_only_sections_are_accepted_and_ignored():
    net = DarknetNet("[net]\nwidth=4\nheight=4\nchannels=1\n[maxpool]\nsize=2\nstride=2\n[cost]\ntype=sse\n")
    assert net.layers[1].kind == "cost" and net.shapes[1] == net.shapes[0]
    x = torch.randn(1, 1, 4, 4)
    with torch.no_grad():
        assert torch.equal(net(x), net.run(x, 0, 1))
