"""The model zoo: every architecture the app can build, registered once with its options.

    from cnnviz.models import list_models, get_spec, get_model
    model = get_model("resnet18", num_classes=2, options={"residual_4": False}, init="imagenet")

Importing this package registers the architectures (alexnet, alexnet_cifar, alex_resnet,
alex_se, resnet18/34/50, vgg11/16, cifar_resnet, softmax, airbench).
"""

from . import alexnet, resnet, vgg, softmax, airbench  # noqa: F401  (registers the architectures, in this order)
from .blocks import SqueezeExcitation, Stage, se_modules
from .build import (count_params, freeze_backbone, get_model, head_module, meta_model, probe_module,
                    replace_head)
from .probe import INPUT, PROBE_FEATURES, ProbeModel, pool_features, probe_grid, run_until
from .registry import ModelSpec, Option, get_spec, list_models, register, resolve_options
from .vgg import VGG_LAYOUTS
from .weights import WeightsError, WeightsUnavailable, hub_checkpoints_dir, load_weights_file, weights_file_name

__all__ = [
    "INPUT", "PROBE_FEATURES", "ModelSpec", "Option", "ProbeModel", "SqueezeExcitation", "Stage", "VGG_LAYOUTS",
    "WeightsError", "WeightsUnavailable", "count_params", "freeze_backbone", "get_model", "get_spec", "head_module",
    "hub_checkpoints_dir", "list_models", "load_weights_file", "meta_model", "pool_features", "probe_grid",
    "probe_module", "register", "replace_head", "resolve_options", "run_until", "se_modules", "weights_file_name",
]
