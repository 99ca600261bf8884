"""Every named architecture, the published state-dict manifest, masking rules and input checks."""

from __future__ import annotations

import json

import pytest
import torch

from hvm1.models import ARCHITECTURES, SIZES, MAEConfig, VideoMAE, ViTConfig, build_model, get_config
from hvm1.models.configs import UnknownArchitectureError
from hvm1.models.mae import masked_mean, standardise_patches, unstandardise_patches
from hvm1.models.masking import make_masking, num_kept
from reference_data import REFERENCE, fixture


def test_size_table_names():
    expected = {f"{kind}_{size}_patch{p}" for kind in ("vit", "mae_vit") for size in SIZES for p in (14, 16)}
    assert set(ARCHITECTURES) == expected
    huge = get_config("mae_vit_huge_patch14")
    assert (huge.embed_dim, huge.depth, huge.num_heads, huge.patch_size) == (1280, 32, 16, 14)
    assert (huge.decoder_embed_dim, huge.decoder_depth, huge.decoder_num_heads) == (512, 4, 16)
    with pytest.raises(UnknownArchitectureError, match="vit_huge_patch14"):
        get_config("vit_hugee_patch14")


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_named_size_builds_on_meta_with_right_shapes(name):
    config = get_config(name, num_classes=0)
    model = build_model(config, device="meta")
    assert all(p.is_meta for p in model.parameters())
    dim, depth = config.embed_dim, config.depth
    sd = model.state_dict()
    assert sd["patch_embed.proj.weight"].shape == (dim, 3, 2, config.patch_size, config.patch_size)
    assert sd[f"blocks.{depth - 1}.mlp.fc1.weight"].shape == (4 * dim, dim)
    assert f"blocks.{depth}.norm1.weight" not in sd
    assert sd["pos_embed_spatial"].shape == (1, (224 // config.patch_size) ** 2, dim)
    assert isinstance(model, VideoMAE) == name.startswith("mae_")


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_named_size_forward_backward_tiny(name):
    """Two blocks at tiny resolution: forward and backward run and every parameter gets a gradient."""
    base = get_config(name)
    small = dict(depth=2, img_size=2 * base.patch_size, num_frames=4)
    extra = dict(decoder_depth=1, pred_t_dim=4) if isinstance(base, MAEConfig) else dict(num_classes=5)
    config = base.replace(**small, **extra)
    torch.manual_seed(0)
    model = build_model(config).train()
    video = torch.randn(2, 3, 4, config.img_size, config.img_size)
    if isinstance(model, VideoMAE):
        loss, pred, mask = model(video, mask_ratio=0.5)
        assert pred.shape == (2, config.num_patches, 2 * config.patch_size**2 * 3)
    else:
        logits = model(video)
        assert logits.shape == (2, 5)
        loss = logits.square().mean()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} received a zero gradient"


@pytest.mark.parametrize("name", ["vit_small_patch16", "mae_vit_small_patch16"])
def test_models_say_their_blocks_layers_and_weight_decay_exemptions(name):
    config = (
        get_config(name, depth=3, decoder_depth=2)
        if name.startswith("mae")
        else get_config(name, depth=3, num_classes=5)
    )
    model = build_model(config, device="meta")
    blocks = model.transformer_blocks()
    expected = [*model.blocks, *model.decoder_blocks] if isinstance(model, VideoMAE) else list(model.blocks)
    assert len(blocks) == len(expected) and all(a is b for a, b in zip(blocks, expected))
    if isinstance(model, VideoMAE):
        return
    parameters = dict(model.named_parameters())
    assert model.no_weight_decay() <= parameters.keys()
    assert all(parameters[name].ndim == 3 for name in model.no_weight_decay())
    layers = model.layer_ids()
    assert layers.keys() == parameters.keys()
    for index, block in enumerate(model.blocks):
        assert {layers[f"blocks.{index}.{name}"] for name, _ in block.named_parameters()} == {index + 1}
    assert {layers[name] for name in ("cls_token", "pos_embed_spatial", "patch_embed.proj.weight")} == {0}
    assert layers["norm.weight"] == layers["head.weight"] == 4 == max(layers.values())


def _zoo_configs():
    for size in (224, 448):
        yield f"mae@{size}", get_config("mae_vit_huge_patch14", img_size=size)
        for classes in (0, 174, 700, 1000):
            yield f"vit@{size}/{classes}", get_config("vit_huge_patch14", img_size=size, num_classes=classes)


def test_state_dict_manifest_matches_published():
    path = fixture(REFERENCE / "vith14_state_dict_shapes.json")
    manifest = json.loads(path.read_text())
    built = dict(_zoo_configs())
    assert set(built) == set(manifest)
    for arch, config in built.items():
        model = build_model(config, device="meta")
        shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
        assert list(shapes) == list(manifest[arch]), f"{arch}: key order differs"
        assert shapes == manifest[arch], arch
    mae_params = sum(p.numel() for p in build_model(built["mae@224"], device="meta").parameters())
    vit_params = sum(p.numel() for p in build_model(built["vit@224/0"], device="meta").parameters())
    assert (mae_params, vit_params) == (645_534_104, 631_527_680)  # PUBLISHED.md


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_mask_ratio_outside_range_is_value_error(ratio):
    with pytest.raises(ValueError, match="mask_ratio must be in"):
        make_masking("random", ratio, 1, 16)
    model = build_model(
        MAEConfig(
            img_size=28,
            num_frames=4,
            embed_dim=32,
            depth=1,
            num_heads=2,
            decoder_embed_dim=16,
            decoder_depth=1,
            decoder_num_heads=2,
            pred_t_dim=4,
        )
    )
    with pytest.raises(ValueError, match="mask_ratio must be in"):
        model(torch.zeros(1, 3, 4, 28, 28), mask_ratio=ratio)


def test_masking_rules():
    # temporal: the earliest tokens are kept
    m = make_masking("temporal", 0.55, 1, 64)
    assert m.mask[0, :28].sum() == 0 and m.mask[0, 28:].sum() == 36
    # center on an odd length with an odd keep count: the extra token goes to the start
    m = make_masking("center", 0.6, 1, 13)
    kept = (m.mask[0] == 0).nonzero().flatten().tolist()
    assert num_kept(13, 0.6) == 5 and kept == [0, 1, 2, 11, 12]
    # random: the smallest noise is kept, per sample
    noise = torch.tensor([[0.5, 0.1, 0.9, 0.3], [0.2, 0.8, 0.7, 0.1]])
    m = make_masking("random", 0.5, 2, 4, noise=noise)
    assert m.mask.tolist() == [[1, 0, 1, 0], [0, 1, 1, 0]]
    assert m.ids_keep.tolist() == [[1, 3], [3, 0]]
    with pytest.raises(ValueError, match=r"noise must have shape \(N, L\) = \(2, 4\)"):
        make_masking("random", 0.5, 2, 4, noise=torch.rand(2, 5))
    with pytest.raises(ValueError, match="unknown mask_type"):
        make_masking("checkerboard", 0.5, 2, 4)


def test_no_state_carried_between_calls():
    config = MAEConfig(
        img_size=28,
        num_frames=4,
        embed_dim=32,
        depth=1,
        num_heads=2,
        decoder_embed_dim=16,
        decoder_depth=1,
        decoder_num_heads=2,
        pred_t_dim=2,
    )
    model = build_model(config).eval()
    before = {name: dict(vars(module)) for name, module in model.named_modules()}
    with torch.no_grad():
        first = model(torch.randn(3, 3, 4, 28, 28), mask_ratio=0.5, visualize=True)
        second = model(torch.randn(1, 3, 4, 28, 28), mask_ratio=0.75, visualize=True, mask_type="center")
    after = {name: dict(vars(module)) for name, module in model.named_modules()}
    assert before.keys() == after.keys()
    for name in before:
        assert before[name].keys() == after[name].keys(), name
    assert first[3].shape == (3, 3, 3, 2, 28, 28) and second[3].shape == (1, 3, 3, 2, 28, 28)


def test_cls_attention_equals_full_attention_row():
    torch.manual_seed(0)
    vit = build_model(ViTConfig(img_size=28, num_frames=4, embed_dim=32, depth=2, num_heads=4)).eval()
    video = torch.randn(2, 3, 4, 28, 28)
    with torch.no_grad():
        full = vit.get_last_selfattention(video)
        row = vit.cls_attention(video)
    assert full.shape == (2, 4, 9, 9) and row.shape == (2, 4, 8)
    torch.testing.assert_close(row, full[:, :, 0, 1:])


def test_invalid_config_is_value_error():
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        ViTConfig(embed_dim=100, num_heads=3)
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        ViTConfig(img_size=100, patch_size=14)


def test_loss_and_target_keep_input_precision_under_autocast():
    config = MAEConfig(
        img_size=28,
        num_frames=4,
        embed_dim=32,
        depth=1,
        num_heads=2,
        decoder_embed_dim=16,
        decoder_depth=1,
        decoder_num_heads=2,
        pred_t_dim=4,
    )
    model = build_model(config).eval()
    video = torch.randn(2, 3, 4, 28, 28)
    noise = torch.rand(2, config.num_patches)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        loss, pred, mask, comparison = model(video, mask_ratio=0.5, visualize=True, noise=noise)
    assert pred.dtype == torch.bfloat16 and loss.dtype == torch.float32
    # the original row is the float32 input itself, not a bf16-rounded copy
    assert comparison.dtype == torch.float32 and torch.equal(comparison[:, 0], video)
    expected = ((pred.float() - model.patchify(video)) ** 2).mean(-1)
    torch.testing.assert_close(loss, (expected * mask).sum() / mask.sum())


def test_any_layer_outputs_are_the_blocks_outputs():
    torch.manual_seed(0)
    model = build_model(ViTConfig(img_size=28, num_frames=4, embed_dim=32, depth=3, num_heads=2)).eval()
    video = torch.randn(2, 3, 4, 28, 42)  # not the configured size: 2 x 2 x 3 tokens
    with torch.no_grad():
        outputs, x = [], model.embed_tokens(video)
        for block in model.blocks:
            x = block(x)
            outputs.append(x)
        last = model.get_last_activation(video)
        chosen = model.forward_intermediates(video, indices=[0, -1])
        normed = model.forward_intermediates(video, indices=1, norm=True)
        final, every = model.forward_intermediates(video, intermediates_only=False)
    assert last.shape == (2, 1 + 12, 32) and torch.equal(last, outputs[-1])
    assert [t.shape for t in chosen] == [(2, 13, 32)] * 2
    assert torch.equal(chosen[0], outputs[0]) and torch.equal(chosen[1], outputs[2])
    assert len(normed) == 1 and torch.equal(normed[0], model.norm(outputs[2]))
    assert len(every) == 3 and torch.equal(every[1], outputs[1])
    torch.testing.assert_close(final, model.forward_features(video), rtol=0, atol=0)
    assert model.block_indices([-3, 2, 2]) == [0, 2]
    for bad in ([3], [-4], 0, 4):
        with pytest.raises(ValueError, match="blocks"):
            model.forward_intermediates(video, indices=bad)


def test_per_patch_loss_averages_to_the_models_loss_over_any_subset():
    for norm_pix_loss in (False, True):
        torch.manual_seed(0)
        config = MAEConfig(
            img_size=28,
            num_frames=4,
            embed_dim=32,
            depth=1,
            num_heads=2,
            decoder_embed_dim=16,
            decoder_depth=1,
            decoder_num_heads=2,
            pred_t_dim=4,
            norm_pix_loss=norm_pix_loss,
        )
        model = build_model(config).eval()
        video = torch.randn(2, 3, 4, 28, 28)
        with torch.no_grad():
            loss, pred, mask = model(video, mask_ratio=0.5, mask_type="center")
        target = model.patchify(model.target_frames(video))
        per_patch = model.forward_loss(target, pred, reduction="none")
        assert per_patch.shape == mask.shape == (2, config.num_patches)
        assert torch.equal(loss, model.forward_loss(target, pred, mask))
        torch.testing.assert_close(per_patch[mask.bool()].mean(), loss)
        # worked by hand: the target patch standardised by its own mean and unbiased variance, or not at all
        patch = target[1, 3]
        expected = (patch - patch.mean()) / (patch.var() + 1e-6) ** 0.5 if norm_pix_loss else patch
        torch.testing.assert_close(per_patch[1, 3], ((pred[1, 3] - expected) ** 2).mean())
        first_clip = torch.zeros_like(mask)
        first_clip[0] = mask[0]  # the average over another subset: the first clip's removed patches
        torch.testing.assert_close(model.forward_loss(target, pred, first_clip), per_patch[0][mask[0].bool()].mean())
    with pytest.raises(ValueError, match="reduction"):
        model.forward_loss(target, pred, mask, reduction="sum")


def test_masked_mean_counts_only_removed_patches_and_is_zero_with_none():
    values = torch.tensor([[1.0, 100.0, 2.0, 100.0], [5.0, 5.0, 5.0, 5.0]])
    mask = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    assert masked_mean(values, mask).item() == 1.5
    assert masked_mean(values, mask, dim=1).tolist() == [1.5, 0.0]


def test_pixel_mask_removes_exactly_the_masked_tokens_pixels():
    config = MAEConfig(
        img_size=28,
        num_frames=8,
        embed_dim=32,
        depth=1,
        num_heads=2,
        decoder_embed_dim=16,
        decoder_depth=1,
        decoder_num_heads=2,
        pred_t_dim=4,
    )  # u = 2, u' = 1
    model = build_model(config).eval()
    video = torch.randn(1, 3, 8, 28, 42)  # not the configured size: 4 x 2 x 3 tokens
    grid = model.token_grid(video)
    mask = make_masking("random", 0.5, 1, 24, noise=torch.rand(1, 24)).mask
    removed = model.pixel_mask(mask, grid)
    assert removed.shape == (1, 4, 28, 42) and removed.dtype == torch.bool
    # a patch set to 1 where the mask removes it, unpatchified, marks exactly the pixels removed
    patches = mask[..., None].expand(1, 24, 14 * 14 * 3)
    assert torch.equal(model.unpatchify(patches, grid)[:, 0].bool(), removed)
    assert model.prediction_grid(grid).num_tokens == 24 and model.prediction_grid().grid == config.grid_size


def test_standardised_patches_go_back_to_pixels():
    patches = torch.randn(2, 5, 12) * 3 + 1
    standardised = standardise_patches(patches)
    torch.testing.assert_close(standardised.mean(-1), torch.zeros(2, 5), atol=1e-6, rtol=0)
    torch.testing.assert_close(unstandardise_patches(standardised, patches), patches)


def test_a_fresh_mae_keeps_the_patch_projections_default_conv3d_bias_as_published():
    config = MAEConfig(
        img_size=28,
        num_frames=4,
        embed_dim=32,
        depth=1,
        num_heads=2,
        decoder_embed_dim=16,
        decoder_depth=1,
        decoder_num_heads=2,
        pred_t_dim=4,
    )
    torch.manual_seed(0)
    # the patch projection is the first module the MAE draws random numbers for, as a lone Conv3d would
    conv = torch.nn.Conv3d(3, 32, kernel_size=(2, 14, 14), stride=(2, 14, 14))
    torch.manual_seed(0)
    model = build_model(config)
    bias = model.patch_embed.proj.bias
    assert torch.equal(bias, conv.bias) and bias.abs().max() > 0
    assert bias.abs().max() <= (3 * 2 * 14 * 14) ** -0.5  # Conv3d's default: uniform in +-1/sqrt(fan_in)
    assert not torch.equal(model.patch_embed.proj.weight, conv.weight)  # the weight is re-drawn (xavier)
