"""PyTorch models named exactly like the engine's builders (include/cnn/models/).

Full-size VGG and ResNet come straight from torchvision. The width-scaled and multi-head variants
the engine also builds (ModelConfig: width, vgg_hidden, vgg_pool, heads) are defined here with the
same module names, so their state_dicts load into the engine unchanged. MobileNet V2 is torchvision's
at any width (its width_mult); only several heads or in_channels != 3 need the wrapper here.
"""
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock, Bottleneck

VGG_CFGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
RESNET_BLOCKS = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]),
                 50: (Bottleneck, [3, 4, 6, 3]), 101: (Bottleneck, [3, 4, 23, 3])}


def scaled(channels, width):
    """Same rounding as ModelConfig::scaled (std::lround: halves away from zero)."""
    return max(1, int(math.floor(channels * width + 0.5)))


def default_config(arch, **kw):
    cfg = {"arch": arch, "num_classes": 1000, "width": 1.0, "in_channels": 3,
           "vgg_hidden": 4096, "vgg_pool": 7, "heads": []}
    cfg.update(kw)
    return cfg


def _parse_arch(arch):
    if arch.startswith("vgg"):
        bn = arch.endswith("_bn")
        return "vgg", int(arch[3:-3] if bn else arch[3:]), bn
    if arch.startswith("resnet"):
        return "resnet", int(arch[6:]), False
    if arch == "mobilenet_v2":
        return "mobilenet", 2, False
    raise ValueError(f"unknown architecture {arch}")


class Heads(nn.Module):
    """Several named Linear heads on one feature vector; returns a dict name -> logits."""

    def __init__(self, in_features, heads):
        super().__init__()
        self.heads = nn.ModuleDict({h["name"]: nn.Linear(in_features, h["outputs"]) for h in heads})

    def forward(self, x):
        return {name: head(x) for name, head in self.heads.items()}


class VGG(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        _, depth, bn = _parse_arch(cfg["arch"])
        layers, ch = [], cfg["in_channels"]
        for v in VGG_CFGS[depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            out = scaled(v, cfg["width"])
            layers.append(nn.Conv2d(ch, out, 3, padding=1))
            if bn:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU(inplace=True))
            ch = out
        self.features = nn.Sequential(*layers)
        p, hid = cfg["vgg_pool"], cfg["vgg_hidden"]
        self.avgpool = nn.AdaptiveAvgPool2d((p, p))
        trunk = [nn.Linear(ch * p * p, hid), nn.ReLU(True), nn.Dropout(), nn.Linear(hid, hid), nn.ReLU(True), nn.Dropout()]
        if cfg["heads"]:
            self.classifier = nn.Sequential(*trunk)
            self.multi = Heads(hid, cfg["heads"])
        else:
            self.classifier = nn.Sequential(*trunk, nn.Linear(hid, cfg["num_classes"]))
            self.multi = None

    def forward(self, x):
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        x = self.classifier(x)
        return self.multi(x) if self.multi is not None else x


class ResNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        _, depth, _ = _parse_arch(cfg["arch"])
        block, blocks = RESNET_BLOCKS[depth]
        w = cfg["width"]
        self.inplanes = scaled(64, w)
        self.conv1 = nn.Conv2d(cfg["in_channels"], self.inplanes, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, scaled(64, w), blocks[0], 1)
        self.layer2 = self._make_layer(block, scaled(128, w), blocks[1], 2)
        self.layer3 = self._make_layer(block, scaled(256, w), blocks[2], 2)
        self.layer4 = self._make_layer(block, scaled(512, w), blocks[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        feat = scaled(512, w) * block.expansion
        if cfg["heads"]:
            self.fc, self.multi = None, Heads(feat, cfg["heads"])
        else:
            self.fc, self.multi = nn.Linear(feat, cfg["num_classes"]), None

    def _make_layer(self, block, planes, n, stride):
        down = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                 nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, down)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.multi(x) if self.multi is not None else self.fc(x)


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2 features with the engine's extras: in_channels != 3, several heads
    (heads.<name> after classifier.0, the Dropout)."""

    def __init__(self, cfg):
        super().__init__()
        tv = torchvision.models.mobilenet_v2(num_classes=cfg["num_classes"], width_mult=cfg["width"])
        self.features = tv.features
        if cfg["in_channels"] != 3:
            c0 = self.features[0][0]
            self.features[0][0] = nn.Conv2d(cfg["in_channels"], c0.out_channels, 3, 2, 1, bias=False)
        if cfg["heads"]:
            self.classifier, self.multi = nn.Sequential(tv.classifier[0]), Heads(tv.last_channel, cfg["heads"])
        else:
            self.classifier, self.multi = tv.classifier, None

    def forward(self, x):
        x = torch.flatten(F.adaptive_avg_pool2d(self.features(x), (1, 1)), 1)
        x = self.classifier(x)
        return self.multi(x) if self.multi is not None else x


def build(cfg):
    """A model for an engine ModelConfig dict; plain torchvision when the config is torchvision's."""
    family, depth, _ = _parse_arch(cfg["arch"])
    if family == "mobilenet":
        if not cfg["heads"] and cfg["in_channels"] == 3:
            return torchvision.models.mobilenet_v2(num_classes=cfg["num_classes"], width_mult=cfg["width"])
        return MobileNetV2(cfg)
    plain = (cfg["width"] == 1.0 and not cfg["heads"] and cfg["in_channels"] == 3
             and (family == "resnet" or (cfg["vgg_hidden"] == 4096 and cfg["vgg_pool"] == 7)))
    if plain:
        return getattr(torchvision.models, cfg["arch"])(num_classes=cfg["num_classes"])
    return VGG(cfg) if family == "vgg" else ResNet(cfg)


def state_dict_for_engine(model):
    """state_dict with the multi-head wrapper's names flattened to heads.<name>.*"""
    out = {}
    for k, v in model.state_dict().items():
        out[k.replace("multi.heads.", "heads.")] = v.detach().cpu()
    return out


def randomize_batchnorm(model, gen):
    """Non-trivial BN statistics and affine parameters, so folding BN is really tested."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.2)
        # MobileNet V2: BatchNorm's output stays within about +-4 here, so ReLU6's upper clamp
        # would never act; a 3x wider BN before each ReLU6 clamps a median 0.2-2% of its inputs at 6
        # (up to 25% in some layers; measured at widths 0.35 and 1). Draws nothing from `gen`.
        for m in model.modules():
            if isinstance(m, nn.Sequential) and len(m) == 3 and isinstance(m[1], nn.BatchNorm2d) \
                    and isinstance(m[2], nn.ReLU6):
                m[1].weight.mul_(3.0)


def config_json(cfg):
    return json.dumps(cfg, separators=(",", ":"))
