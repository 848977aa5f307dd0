"""Loading user hidden states (npy/npz/safetensors, streamed) and the measurement pipeline."""

import json
import struct

import numpy as np
import pytest

from tokenscale_sim.hidden import arrays
from tokenscale_sim.hidden import measure as hm
from tokenscale_sim.hidden._optional import require
from tokenscale_sim.theory import closed_forms as theory
from tokenscale_sim.theory import divergence

NO_FIT = hm.MeasureOptions(fit=False)


def _hidden(pairs=5, n=7, d=6, seed=0):
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(pairs, 1, 1, d))  # a per-pair direction shared by A and B
    return rng.normal(size=(pairs, 2, n, d)) + 1.5 * shared


def _write_safetensors(path, tensors, dtype="F32"):
    header, blobs, offset = {}, [], 0
    for key, value in tensors.items():
        if dtype == "BF16":
            raw = (np.asarray(value, np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        else:
            raw = np.asarray(value, {"F32": "<f4", "F64": "<f8"}[dtype]).tobytes()
        header[key] = {
            "dtype": dtype,
            "shape": list(value.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def _curves(m):
    return np.stack([m.curves[f].mean for f in hm.FIELDS] + [m.curves[f].se for f in hm.FIELDS])


def test_every_format_gives_the_in_memory_numbers(tmp_path):
    h = _hidden()
    ref = _curves(hm.measure(arrays.from_arrays(h), NO_FIT))
    np.save(tmp_path / "h.npy", h)
    np.save(tmp_path / "a.npy", h[:, 0])
    np.save(tmp_path / "b.npy", h[:, 1])
    np.savez(tmp_path / "stacked.npz", hidden=h)
    np.savez_compressed(tmp_path / "split.npz", A=h[:, 0], B=h[:, 1])
    _write_safetensors(tmp_path / "h.safetensors", {"a": h[:, 0], "b": h[:, 1]}, "F64")
    sources = [
        arrays.open_hidden(tmp_path / "h.npy"),
        arrays.open_hidden(tmp_path / "a.npy", tmp_path / "b.npy"),
        arrays.open_hidden(tmp_path / "stacked.npz"),
        arrays.open_hidden(tmp_path / "split.npz"),
        arrays.open_hidden(tmp_path / "h.safetensors"),
    ]
    for src in sources:
        assert (src.pairs, src.n, src.d) == h.shape[:1] + h.shape[2:]
        np.testing.assert_allclose(_curves(hm.measure(src, NO_FIT)), ref, rtol=1e-12, atol=1e-14)


def test_float32_and_bfloat16_files_are_read(tmp_path):
    h = _hidden().astype(np.float32)
    _write_safetensors(tmp_path / "f.safetensors", {"hidden": h}, "F32")
    _write_safetensors(tmp_path / "b.safetensors", {"hidden": h}, "BF16")
    chunk32 = next(arrays.iter_pairs(arrays.open_hidden(tmp_path / "f.safetensors")))
    chunk16 = next(arrays.iter_pairs(arrays.open_hidden(tmp_path / "b.safetensors")))
    np.testing.assert_array_equal(chunk32.hidden, h)
    np.testing.assert_allclose(chunk16.hidden, h, rtol=2**-7)  # bfloat16 keeps 8 bits


def test_chunk_size_does_not_change_the_result():
    h = _hidden(pairs=9, n=20)  # n = 20 and 200 replicates: the fit compiles once for the file
    one = hm.measure(arrays.from_arrays(h), hm.MeasureOptions(chunk=1))
    many = hm.measure(arrays.from_arrays(h), hm.MeasureOptions(chunk=4))
    np.testing.assert_allclose(_curves(one), _curves(many), rtol=1e-12, atol=1e-14)
    assert one.lambda_pairs is not None and many.lambda_pairs is not None
    np.testing.assert_allclose(one.lambda_pairs.lambdas, many.lambda_pairs.lambdas, rtol=1e-9)


def test_moments_match_numpy():
    h = _hidden(pairs=8)
    m = hm.measure(arrays.from_arrays(h), hm.MeasureOptions(chunk=3, fit=False))
    d = np.asarray(divergence.branch_statistics(divergence.unit_normalise(h)).divergence)
    np.testing.assert_allclose(m.curves["divergence"].mean, d.mean(0), rtol=1e-12)
    np.testing.assert_allclose(m.curves["divergence"].std, d.std(0, ddof=1), rtol=1e-10)
    np.testing.assert_allclose(m.curves["divergence"].se, d.std(0, ddof=1) / np.sqrt(8), rtol=1e-10)


def test_per_sample_identity_and_missing_pairwise_psi():
    h = _hidden()
    values, valid = hm.pair_statistics(next(arrays.iter_pairs(arrays.from_arrays(h))))
    div, upsilon = values[0], values[hm.FIELDS.index("upsilon")]
    np.testing.assert_allclose(div**2, 2 * upsilon, rtol=1e-10)
    for name in ("psi_aa", "psi_bb", "psi_ab", "psi_aabb", "delta"):
        assert not valid[hm.FIELDS.index(name), :, 0].any()
    m = hm.measure(arrays.from_arrays(h), NO_FIT)
    for name in ("psi_aa", "psi_ab", "delta"):
        assert np.isnan(m.curves[name].mean[0]) and np.isfinite(m.curves[name].mean[1:]).all()
    assert np.isnan(m.n_b_curve[0])
    assert np.all(m.ratio <= 1 + 1e-12)  # Jensen: mean D <= sqrt(2 Upsilon) for unit tokens


def test_fit_returns_lambda_with_an_interval():
    m = hm.measure(arrays.from_arrays(_hidden(pairs=6, n=20)))
    assert m.fit is not None and m.fit.param_names == ("lambda",)
    lam, low, high = m.fit.estimates[0, 0], m.fit.ci_low[0, 0], m.fit.ci_high[0, 0]
    assert low < lam < high and 0 < lam <= np.sqrt(2) + 1e-9
    np.testing.assert_allclose(m.law, lam * np.sqrt(m.curves["upsilon"].mean))
    boot = m.lambda_pairs  # resampling pairs: wider than the fit's own interval
    assert boot is not None and boot.lambdas.shape == (200,) and boot.level == 0.95
    assert boot.low < lam < boot.high and boot.high - boot.low > high - low


def test_pair_weights_are_poisson_and_chunk_free():
    w = hm.pair_weights(0, 400, 50, seed=3)
    assert w.shape == (50, 400) and abs(w.mean() - 1) < 0.05
    np.testing.assert_array_equal(hm.pair_weights(100, 5, 50, seed=3), w[:, 100:105])


def test_mask_restricts_each_pair_to_its_length():
    h = _hidden(pairs=4, n=6)
    lengths = np.array([6, 3, 6, 2])
    mask = np.arange(6) < lengths[:, None]
    h_masked = np.where(mask[:, None, :, None], h, np.nan)  # padding may hold anything
    m = hm.measure(arrays.from_arrays(h_masked, mask=mask), NO_FIT)
    np.testing.assert_array_equal(m.count, [4, 4, 3, 2, 2, 2])
    full = hm.measure(arrays.from_arrays(h[[0, 2]]), NO_FIT)
    np.testing.assert_allclose(_curves(m)[:, 3:], _curves(full)[:, 3:], rtol=1e-12)
    by_lengths = hm.measure(arrays.from_arrays(h_masked, lengths=lengths), NO_FIT)
    np.testing.assert_allclose(_curves(by_lengths), _curves(m), rtol=1e-12)


def test_mask_in_npz(tmp_path):
    h = _hidden(pairs=3, n=5)
    mask = np.ones((3, 2, 5), bool)
    mask[1, 0, 3:] = False  # branch A of pair 1 is shorter: the pair counts up to n = 3
    np.savez(tmp_path / "m.npz", hidden=h, mask=mask)
    src = arrays.open_hidden(tmp_path / "m.npz")
    np.testing.assert_array_equal(src.lengths, [5, 3, 5])


def test_fixed_point_statuses():
    n = np.arange(1.0, 6.0)
    ones = np.full(5, 0.1)
    assert theory.fixed_point(n, np.array([np.nan, 9, 9, 9, 9.0]), ones).status == "beyond"
    assert (
        theory.fixed_point(n, np.array([np.nan, 1, 1, 1, 1.0]), ones).status == "linear_from_start"
    )
    assert theory.fixed_point(n, n, -ones).status == "no_transition"
    tp = theory.fixed_point(n, np.array([np.nan, 3.0, 3.5, 3.5, 3.0]), ones)
    assert tp.status == "crossing" and tp.n_b == pytest.approx(3.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"h": np.ones((2, 3, 4, 5))}, r"shape \(pairs, 2, n, d\)"),
        ({"h": np.ones((2, 2, 4))}, r"shape \(pairs, 2, n, d\)"),
        ({"a": np.ones((2, 4, 5)), "b": np.ones((2, 3, 5))}, "same n"),
        ({"a": np.ones((2, 4, 5)), "b": np.ones((3, 4, 5))}, "equal pairs and d"),
        ({"a": np.ones((2, 4, 5)), "b": np.ones((2, 4))}, r"shape \(pairs, n, d\)"),
        ({"h": np.ones((2, 2, 4, 5), int)}, "must be floats"),
        ({"h": np.ones((2, 2, 4, 5)), "mask": np.ones((2, 5), bool)}, "mask must have shape"),
        ({"h": np.ones((2, 2, 4, 5)), "mask": np.array([[1, 0, 1, 1]] * 2)}, "prefix"),
        ({"h": np.ones((2, 2, 4, 5)), "lengths": np.array([0, 4])}, "between 1 and n"),
        ({"h": np.ones((2, 2, 4, 5)), "lengths": np.array([1.0, 4.0])}, "integers"),
        (
            {"h": np.ones((2, 2, 4, 5)), "lengths": np.array([1, 4]), "mask": np.ones((2, 4))},
            "not both",
        ),
        ({"a": np.ones((2, 4, 5))}, "either h"),
    ],
)
def test_shape_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        arrays.from_arrays(**kwargs)


@pytest.mark.parametrize(
    ("value", "match"), [(np.nan, "finite"), (np.inf, "finite"), (0.0, "zero vector")]
)
def test_value_errors_name_pair_branch_token(value, match):
    h = _hidden(pairs=5)
    h[3, 1, 2, :] = value
    with pytest.raises(ValueError, match=rf"{match}.*pair 3, branch B, token 2"):
        hm.measure(arrays.from_arrays(h), hm.MeasureOptions(chunk=2, fit=False))


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        arrays.open_hidden(tmp_path / "missing.npy")
    (tmp_path / "h.txt").write_text("1")
    with pytest.raises(ValueError, match="must end in one of"):
        arrays.open_hidden(tmp_path / "h.txt")
    np.savez(tmp_path / "keys.npz", x=np.ones((2, 2, 3, 4)), y=np.ones(3))
    with pytest.raises(ValueError, match=r"'hidden'.*got keys"):
        arrays.open_hidden(tmp_path / "keys.npz")
    np.save(tmp_path / "a.npy", np.ones((2, 3, 4)))
    np.savez(tmp_path / "b.npz", b=np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"both be \.npy"):
        arrays.open_hidden(tmp_path / "a.npy", tmp_path / "b.npz")
    np.savez(tmp_path / "f.npz", hidden=np.asfortranarray(np.ones((2, 2, 3, 4))))
    with pytest.raises(ValueError, match="C-ordered"):
        arrays.open_hidden(tmp_path / "f.npz")
    _write_safetensors(tmp_path / "i.safetensors", {"hidden": np.ones((2, 2, 3, 4))})
    text = (tmp_path / "i.safetensors").read_bytes().replace(b'"F32"', b'"I32"')
    (tmp_path / "i.safetensors").write_bytes(text)
    with pytest.raises(ValueError, match="dtype I32"):
        arrays.open_hidden(tmp_path / "i.safetensors")


def test_option_errors():
    with pytest.raises(ValueError, match="MeasureOptions: chunk must be an integer >= 1, got 0"):
        hm.MeasureOptions(chunk=0)
    with pytest.raises(TypeError, match="MeasureOptions: level must be"):
        hm.MeasureOptions(level="0.9")
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        next(arrays.iter_pairs(arrays.from_arrays(_hidden()), chunk=0))
    with pytest.raises(ValueError, match="one slice per layer"):
        hm.measure_layers(_hidden()[None], [0, 1], NO_FIT)
    with pytest.raises(ValueError, match="at least 2 n"):
        hm.fit_law(np.arange(1.0, 3.0), np.array([1.0, np.nan]), np.ones(2), hm.MeasureOptions())
    with pytest.raises(ValueError, match="bootstrap must be 0"):
        hm.MeasureOptions(bootstrap=1)


def test_missing_extra_names_the_install_command():
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'tokenscale_sim\[vision\]'"):
        require("tokenscale_no_such_module", "caller")


def test_plots_draw_measurements():
    import matplotlib.pyplot as plt

    from tokenscale_sim.plots import hidden as hplots

    results = {k: hm.measure(arrays.from_arrays(_hidden(pairs=3, n=20, seed=k))) for k in (0, 1)}
    fig = hplots.overview(results[0], title="layer 0")
    assert len(fig.axes) == 3
    fig2 = hplots.layer_summary(results)
    assert len(fig2.axes[0].lines) >= 2
    plt.close("all")


def test_measure_in_float32(float32):
    m = hm.measure(arrays.from_arrays(_hidden()), NO_FIT)
    assert np.isfinite(m.curves["divergence"].mean).all() and np.all(m.ratio <= 1 + 1e-5)
    values, _ = hm.pair_statistics(next(arrays.iter_pairs(arrays.from_arrays(_hidden()))))
    np.testing.assert_allclose(values[0] ** 2, 2 * values[-1], rtol=1e-4)
