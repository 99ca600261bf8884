"""A first example that runs anywhere, offline: build HVM-1-shaped models at a small size and use each API.

Run: python examples/quickstart.py  (or `make demo`). With real weights, replace `create_model(...)` by
`hvm1.load_model("mae_hvm1_none")` or `hvm1.load_model("path/to/checkpoint.pth")`.
"""

from __future__ import annotations

import torch

import hvm1


def main() -> None:
    torch.manual_seed(0)
    # The HVM-1 layout (16 frames, tubelet 2, patch 14) at ViT-tiny width and 112 px, so it runs in seconds.
    small = dict(img_size=112, num_frames=16)
    mae = hvm1.create_model("mae_vit_tiny_patch14", **small).eval()
    vit = hvm1.create_model("vit_tiny_patch14", num_classes=174, **small).eval()
    video = torch.randn(1, 3, 16, 112, 112)  # a normalised clip: (N, C, T, H, W)

    with torch.no_grad():
        loss, pred, mask, comparison = mae(video, mask_ratio=0.5, mask_type="center", visualize=True)
        logits = vit(video)
        tokens = vit.forward_features(video)
        attention = vit.cls_attention(video)
    print(
        f"MAE (random weights): loss {loss.item():.3f}, pred {tuple(pred.shape)}, "
        f"{int(mask.sum())} of {mask.shape[1]} tokens masked, comparison {tuple(comparison.shape)}"
    )
    print(f"ViT: logits {tuple(logits.shape)}, tokens {tuple(tokens.shape)}, CLS attention {tuple(attention.shape)}")


if __name__ == "__main__":
    main()
