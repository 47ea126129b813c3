"""A frozen diffusion backbone: loading one (any diffusers UNet folder or a shipped model by name), the models shipped
with dgss, and the appearance matching every image gets before the UNet sees it. Training one is `dgss.pretrain`."""
