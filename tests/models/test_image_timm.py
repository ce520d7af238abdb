import copy
import pickle

import timm
import torch

from m2pt.models import create_model


def test_image_model_loads_strict_into_timm_vit():
    model = create_model("image", "base", num_classes=10, img_size=32, embed_dim=64, depth=2, num_heads=4)
    reference = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, num_classes=10, img_size=32, embed_dim=64, depth=2,
        num_heads=4, global_pool="avg", fc_norm=True)
    reference.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(reference.eval()(x), model.eval()(x))
    assert model.pretrained_cfg["input_size"] == (3, 32, 32)


def test_image_model_survives_pickle_and_deepcopy():
    model = create_model("image", "tiny", num_classes=3, embed_dim=32, depth=1, num_heads=2)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert clone(torch.randn(1, 1, 28, 28)).shape == (1, 3)
        try:
            clone(torch.randn(1, 3, 28, 28))
        except ValueError as error:
            assert "expects input [B, 1, 28, 28]" in str(error)
        else:
            raise AssertionError("the input check was lost in the copy")
