"""Procedural fundus-like images with exact vessel ground truth: the default domains that need no data.

Three domains imitate how the public datasets differ from each other (colour balance, contrast, blur, noise,
illumination, camera field angle, vessel width and density): "A" like DRIVE, "B" like STARE, "C" like CHASE_DB1.
Everything geometric (vessel tree, optic disc, macula, lesions, textures) is drawn from ``(domain, index)`` in units
of the field of view, so an image at 128 px looks like the 512 px one downsampled; only sensor noise depends on size.
The vessel mask is the exact set of pixels whose centre lies inside a drawn vessel tube; anti-aliasing darkens the
image only.
"""

import math
import zlib
from dataclasses import asdict, dataclass, fields

import numpy as np
from scipy import ndimage

from dgss.errors import DatasetError

_STEP = 0.01  # walk step, in units of a 45 deg field-of-view radius
_MAX_STEPS = 320  # longest vessel: 3.2 radii, longer than any path that stays inside the FOV
_MAX_VESSELS = 4000  # guard against a style whose branching never dies out
_REFERENCE_SIZE = 512  # widths in a style are pixels at this image size
_DISC_RADIUS = 0.12  # optic disc radius in 45 deg FOV radii (disc diameter ~ 1/8 of a 45 deg field)
_FOVEA_RADIUS = 0.07  # the foveal avascular zone: vessels stop here


@dataclass(frozen=True, kw_only=True)
class DomainStyle:
    """Every parameter that makes a synthetic domain a domain; colours are linear RGB reflectances in [0, 1]."""

    like: str  # the public dataset this domain imitates (documentation only)
    field_of_view_deg: float  # camera field angle: a narrower field magnifies the retina
    fov_radius: float  # FOV radius as a fraction of half the image size
    background_rgb: tuple[float, float, float]
    disc_rgb: tuple[float, float, float]
    vessel_absorb_rgb: tuple[float, float, float]  # per-channel darkening of a wide vessel at full contrast
    vessel_contrast: float
    trunk_width_px: float  # widest vein at the disc, pixels at 512 px and a 45 deg field
    min_width_px: float  # vessels end when thinner than this (pixels at 512 px, after magnification)
    branch_spacing: float  # mean arc length between branch points, in FOV radii: smaller is denser
    tortuosity: float  # standard deviation of the vessel curvature noise, radians per FOV radius
    texture_amp: float  # choroidal texture strength
    macula_depth: float  # darkening at the fovea
    gain: float  # overall brightness
    falloff: float  # illumination drop from centre to FOV edge
    unevenness: float  # strength of the random low-frequency illumination field
    tint_unevenness: float  # how much that field also shifts colour (blue cast where darker)
    haemorrhages: float  # mean count of dark red blotches
    exudates: float  # mean count of bright yellow spots
    blur_px: float  # Gaussian blur sigma, pixels at 512 px
    noise_std: float  # sensor noise, fraction of full scale

    def to_dict(self) -> dict:
        """Plain JSON-ready dict, e.g. for a reader's provenance attributes."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "DomainStyle":
        """Inverse of :meth:`to_dict` (lists from JSON become tuples)."""
        return cls(**{f.name: tuple(values[f.name]) if isinstance(values[f.name], list) else values[f.name]
                      for f in fields(cls)})


SYNTHETIC_DOMAINS: dict[str, DomainStyle] = {
    "A": DomainStyle(
        like="DRIVE", field_of_view_deg=45.0, fov_radius=0.94,
        background_rgb=(0.88, 0.42, 0.20), disc_rgb=(1.0, 0.86, 0.58), vessel_absorb_rgb=(0.30, 0.62, 0.50),
        vessel_contrast=0.85, trunk_width_px=8.5, min_width_px=1.0, branch_spacing=0.06, tortuosity=2.5,
        texture_amp=0.05, macula_depth=0.35, gain=0.80, falloff=0.35, unevenness=0.12, tint_unevenness=0.0,
        haemorrhages=0.3, exudates=0.3, blur_px=0.6, noise_std=0.012,
    ),
    "B": DomainStyle(
        like="STARE", field_of_view_deg=35.0, fov_radius=0.92,
        background_rgb=(0.96, 0.58, 0.30), disc_rgb=(1.0, 0.95, 0.75), vessel_absorb_rgb=(0.35, 0.72, 0.60),
        vessel_contrast=1.0, trunk_width_px=7.0, min_width_px=1.0, branch_spacing=0.1, tortuosity=3.5,
        texture_amp=0.08, macula_depth=0.30, gain=0.95, falloff=0.30, unevenness=0.18, tint_unevenness=0.0,
        haemorrhages=6.0, exudates=10.0, blur_px=0.8, noise_std=0.018,
    ),
    "C": DomainStyle(
        like="CHASE_DB1", field_of_view_deg=30.0, fov_radius=0.96,
        background_rgb=(0.66, 0.30, 0.28), disc_rgb=(0.95, 0.75, 0.65), vessel_absorb_rgb=(0.28, 0.55, 0.40),
        vessel_contrast=0.95, trunk_width_px=6.5, min_width_px=1.4, branch_spacing=0.07, tortuosity=2.0,
        texture_amp=0.04, macula_depth=0.25, gain=0.70, falloff=0.55, unevenness=0.35, tint_unevenness=0.6,
        haemorrhages=0.3, exudates=0.0, blur_px=1.6, noise_std=0.015,
    ),
}


def generate_fundus(domain: str, index: int, size: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one fundus-like image of ``domain``, deterministic from ``(domain, index, size)``.

    Parameters
    ----------
    domain : str
        A key of :data:`SYNTHETIC_DOMAINS` ("A", "B" or "C").
    index : int
        Image number; each index is a different eye.
    size : int
        Height and width in pixels; geometry scales with it, vessels stay at least 1 px wide.

    Returns
    -------
    image : np.ndarray
        (y, x, rgb) uint8.
    vessel : np.ndarray
        (y, x) bool, exactly the pixels drawn as vessel; a subset of ``fov``.
    fov : np.ndarray
        (y, x) bool, the circular field of view.
    """
    if domain not in SYNTHETIC_DOMAINS:
        raise DatasetError(f"unknown synthetic domain {domain!r}; use one of {sorted(SYNTHETIC_DOMAINS)}")
    style = SYNTHETIC_DOMAINS[domain]
    seed = [zlib.crc32(f"dgss-synthetic-{domain}".encode()), index]
    scene = np.random.default_rng(seed)  # everything geometric: independent of size
    sensor = np.random.default_rng([*seed, size])
    zoom = 45.0 / style.field_of_view_deg
    side = 1.0 if scene.random() < 0.5 else -1.0  # +1: disc right of the macula
    centre = np.array([side * 0.2 * (zoom - 1.0), 0.0]) + scene.normal(0.0, 0.03, 2)
    disc = np.array([side * 0.42, 0.0]) + scene.normal(0.0, [0.03, 0.04])
    macula = disc + np.array([-side * 0.62, 0.06]) + scene.normal(0.0, 0.02, 2)
    tree = _grow_tree(scene, style, side, disc, macula, centre, zoom)

    radius_px = style.fov_radius * size / 2.0
    axis = (np.arange(size, dtype=np.float32) - (size - 1) / 2.0) / radius_px
    x, y = axis[None, :], axis[:, None]
    fov = x * x + y * y <= 1.0
    # retina units -> image units (FOV radius 1)
    reflectance = _draw_background(scene, style, x, y, (disc - centre) * zoom, (macula - centre) * zoom, zoom)
    vessel, darkness = _rasterize(tree, size, radius_px, zoom, centre)
    vessel &= fov
    absorb = style.vessel_contrast * np.array(style.vessel_absorb_rgb, dtype=np.float32)
    reflectance *= 1.0 - (darkness * fov)[..., None] * absorb
    image = reflectance * _illumination(scene, style, x, y)
    image *= fov[..., None]
    sigma = style.blur_px * size / _REFERENCE_SIZE
    if sigma > 0.3:
        image = ndimage.gaussian_filter(image, sigma=(sigma, sigma, 0), truncate=3.0)
    image += sensor.standard_normal(image.shape, dtype=np.float32) * np.float32(style.noise_std)
    image *= fov[..., None]
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8), vessel, fov


def _grow_tree(rng: np.random.Generator, style: DomainStyle, side: float, disc: np.ndarray, macula: np.ndarray,
               centre: np.ndarray, zoom: float) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Grow arcades from the disc and branch them until too thin; returns (points, widths, strength) per vessel.

    Points are retina units (a 45 deg FOV radius is 1), widths pixels at 512 px after magnification.
    """
    stack = []
    for v in (-1.0, 1.0):  # superior, inferior
        for is_vein, w_factor, twist in ((True, 1.0, 0.12), (False, 0.78, -0.12)):
            w = style.trunk_width_px * zoom * w_factor * rng.uniform(0.9, 1.1)
            strength = 1.1 if is_vein else 0.8
            temporal = math.atan2(v, -side * 0.35) + twist * v
            stack.append((disc + rng.normal(0.0, 0.015, 2), temporal, w, side * v * 2.8, strength))
            nasal = math.atan2(v, side * 0.8) + twist
            stack.append((disc + rng.normal(0.0, 0.015, 2), nasal, 0.75 * w, -side * v * 0.8, strength))
        macular = math.atan2(v * 0.25, -side)
        stack.append((disc, macular, 0.35 * style.trunk_width_px * zoom, 0.0, 0.9))
    vessels = []
    while stack and len(vessels) < _MAX_VESSELS:
        start, heading, width, bend, strength = stack.pop()
        points, widths, children = _walk(rng, style, start, heading, width, bend, disc, macula, centre, zoom)
        if len(points) >= 2:
            vessels.append((points, widths, strength))
        stack.extend((p, h, w, b, strength) for p, h, w, b in children)
    return vessels


def _walk(rng: np.random.Generator, style: DomainStyle, start: np.ndarray, heading: float, width: float, bend: float,
          disc: np.ndarray, macula: np.ndarray, centre: np.ndarray, zoom: float
          ) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, float, float, float]]]:
    """One vessel: a smooth random walk whose width tapers and drops at each branch (Murray's law).

    Returns its points (n, 2), widths (n,), and the children (start, heading, width, bend) to grow next.
    """
    n = _MAX_STEPS
    s = np.arange(n) * _STEP
    smooth = np.hanning(9)
    noise = np.convolve(rng.standard_normal(n + 8), smooth / np.linalg.norm(smooth), mode="valid")
    curvature = bend * np.exp(-s / 0.6) + style.tortuosity * noise
    phi = heading + np.concatenate([[0.0], np.cumsum(curvature[:-1] * _STEP)])
    steps = np.stack([np.cos(phi), np.sin(phi)], axis=1) * _STEP
    points = start + np.concatenate([[[0.0, 0.0]], np.cumsum(steps[:-1], axis=0)])
    # branch points, each taking a fraction of the parent's width; the parent keeps (1 - f^3)^(1/3) of it
    where = np.cumsum(rng.exponential(style.branch_spacing, 40)) + style.branch_spacing * 0.3
    where = np.unique(np.minimum((where / _STEP).astype(int), n - 1))
    # mostly small side branches that barely thin the parent, sometimes a near-even bifurcation
    fraction = np.where(rng.random(len(where)) < 0.2, rng.uniform(0.7, 0.9, len(where)),
                        rng.uniform(0.25, 0.6, len(where)))
    keep = np.ones(n)
    keep[where] = (1.0 - fraction**3) ** (1.0 / 3.0)
    length_scale = 0.3 + 0.25 * width / zoom
    widths = width * np.exp(-s / length_scale) * np.cumprod(keep)
    inside = (np.linalg.norm((points - centre) * zoom, axis=1) < 0.98) & (
        np.linalg.norm(points - macula, axis=1) > _FOVEA_RADIUS) & (widths >= style.min_width_px)
    end = n if inside.all() else int(np.argmin(inside))
    turn = rng.uniform(0.5, 1.3, len(where)) * rng.choice([-1.0, 1.0], len(where))
    child_bend = rng.normal(0.0, 1.5, len(where))
    parent_width = np.concatenate([[width], widths[:-1]])[where]  # width just before the branch
    children = [(points[i], phi[i] + t, w, b) for i, t, w, b in
                zip(where, turn, parent_width * fraction, child_bend)
                if i < end - 1 and w >= style.min_width_px and np.linalg.norm(points[i] - disc) > _DISC_RADIUS]
    return points[:end], widths[:end], children


def _rasterize(tree: list[tuple[np.ndarray, np.ndarray, float]], size: int, radius_px: float, zoom: float,
               centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Draw vessels as tapered capsules over small windows; returns the exact mask and anti-aliased darkness.

    Mask (y, x) bool: pixel centres within a tube. Darkness (y, x) float32: coverage times vessel strength.
    """
    scale = size / _REFERENCE_SIZE
    p0, p1, r0, r1, strength = [], [], [], [], []
    for points, widths, vessel_strength in tree:
        # like downsampling: vessels under 0.4 px vanish, the others stay visible at >= 1 px
        seen = int(np.argmax(widths * scale < 0.4)) if (widths * scale < 0.4).any() else len(widths)
        if seen < 2:
            continue
        pix = (points[:seen] - centre) * zoom * radius_px + (size - 1) / 2.0
        half = np.maximum(widths[:seen] * scale, 1.0) / 2.0
        p0.append(pix[:-1]), p1.append(pix[1:]), r0.append(half[:-1]), r1.append(half[1:])
        # thin vessels have less contrast, as in photographs
        strength.append(vessel_strength * np.clip(np.sqrt(widths[:seen - 1] / 3.0), 0.5, 1.0))
    mask = np.zeros(size * size, dtype=bool)
    darkness = np.zeros(size * size, dtype=np.float32)
    if not p0:  # an image so small that every vessel is under 0.4 px
        return mask.reshape(size, size), darkness.reshape(size, size)
    p0, p1, r0, r1, strength = (np.concatenate(a).astype(np.float32) for a in (p0, p1, r0, r1, strength))
    u = p1 - p0
    reach = np.ceil(np.maximum(r0, r1) + np.linalg.norm(u, axis=1) / 2.0 + 1.0).astype(int)
    mid = np.rint((p0 + p1) / 2.0).astype(int)
    for k in np.unique(reach):
        sel = reach == k
        oy, ox = (o.ravel() for o in np.meshgrid(np.arange(-k, k + 1), np.arange(-k, k + 1), indexing="ij"))
        px, py = mid[sel, 0, None] + ox, mid[sel, 1, None] + oy
        rx, ry = px - p0[sel, 0, None], py - p0[sel, 1, None]
        ux, uy = u[sel, 0, None], u[sel, 1, None]
        t = np.clip((rx * ux + ry * uy) / np.maximum(ux * ux + uy * uy, 1e-6), 0.0, 1.0)
        dist = np.hypot(rx - t * ux, ry - t * uy)
        radius = r0[sel, None] + t * (r1[sel, None] - r0[sel, None])
        cover = np.clip(radius + 0.5 - dist, 0.0, 1.0) * strength[sel, None]
        valid = (px >= 0) & (px < size) & (py >= 0) & (py < size) & (cover > 0)
        flat = (py * size + px)[valid]
        np.maximum.at(darkness, flat, cover[valid])
        mask[flat[(dist <= radius)[valid]]] = True
    return mask.reshape(size, size), darkness.reshape(size, size)


def _smooth_noise(rng: np.random.Generator, cells: int, like: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-ish smooth noise: a cells x cells grid upsampled to the image, so it does not depend on size."""
    size = like.shape[1]
    grid = rng.standard_normal((cells, cells)).astype(np.float32)
    return ndimage.zoom(grid, size / cells, order=3, mode="grid-mirror", grid_mode=True)[:size, :size]


def _draw_background(rng: np.random.Generator, style: DomainStyle, x: np.ndarray, y: np.ndarray,
                     disc: np.ndarray, macula: np.ndarray, zoom: float) -> np.ndarray:
    """Reflectance (y, x, rgb) float32 of the retina without vessels: texture, macula, optic disc, lesions."""
    base = np.array(style.background_rgb, dtype=np.float32)
    texture = 1.0 + style.texture_amp * (0.6 * _smooth_noise(rng, 40, x) + _smooth_noise(rng, 6, x))
    out = base * texture[..., None]
    fovea = np.exp(-((x - macula[0]) ** 2 + (y - macula[1]) ** 2) / (0.17 * zoom) ** 2)
    out *= (1.0 - style.macula_depth * fovea)[..., None]
    r = _DISC_RADIUS * zoom
    rho = np.sqrt(((x - disc[0]) / r) ** 2 + ((y - disc[1]) / (1.1 * r)) ** 2)
    disc_mix = 1.0 / (1.0 + np.exp((rho - 1.0) / 0.08))
    cup = np.exp(-((rho / 0.45) ** 2)) * 0.15
    disc_colour = np.array(style.disc_rgb, dtype=np.float32) * (1.0 + cup)[..., None]
    out = out * (1.0 - disc_mix[..., None]) + disc_colour * disc_mix[..., None]
    for count, colour, weight, scale in ((style.haemorrhages, (0.35, 0.12, 0.08), 0.8, 0.03),
                                         (style.exudates, (1.0, 0.88, 0.45), 0.8, 0.018)):
        for _ in range(rng.poisson(count)):
            _stamp_blob(rng, out, x, y, np.array(colour, dtype=np.float32), weight, scale)
    return out.astype(np.float32)


def _stamp_blob(rng: np.random.Generator, out: np.ndarray, x: np.ndarray, y: np.ndarray, colour: np.ndarray,
                weight: float, scale: float) -> None:
    """Blend one soft elliptic lesion into ``out`` over its bounding box only (cheap for many lesions)."""
    angle, radius = rng.uniform(0, 2 * np.pi), 0.8 * np.sqrt(rng.random())
    cx, cy = radius * np.cos(angle), radius * np.sin(angle)
    a, b = scale * rng.uniform(0.5, 1.5, 2)
    tilt = rng.uniform(0, np.pi)
    xs = np.flatnonzero(np.abs(x[0] - cx) < 2.5 * max(a, b))
    ys = np.flatnonzero(np.abs(y[:, 0] - cy) < 2.5 * max(a, b))
    if len(xs) == 0 or len(ys) == 0:
        return
    dx, dy = x[:, xs] - cx, y[ys] - cy
    u, v = dx * np.cos(tilt) + dy * np.sin(tilt), -dx * np.sin(tilt) + dy * np.cos(tilt)
    mix = weight * np.exp(-((u / a) ** 2 + (v / b) ** 2) ** 2)[..., None]
    box = out[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1]
    box[:] = box * (1.0 - mix) + colour * mix


def _illumination(rng: np.random.Generator, style: DomainStyle, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Camera illumination (y, x, rgb): radial falloff times a random low-frequency field, bluer where darker."""
    field = style.unevenness * (_smooth_noise(rng, 3, x) + 0.6 * (x * rng.normal() + y * rng.normal()))
    light = style.gain * (1.0 - style.falloff * (x * x + y * y) ** 1.5) * np.exp(field)
    tint = np.array([1.0, 1.0, 1.0], dtype=np.float32) + style.tint_unevenness * np.array([-0.15, 0.0, 0.35],
                                                                                        dtype=np.float32) * (
        np.clip(-field, 0.0, None)[..., None])
    return (light[..., None] * tint).astype(np.float32)
