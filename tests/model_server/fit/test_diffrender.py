import numpy as np
import open3d as o3d
import pytest
import torch

from model_server.evaluation.metrics import silhouette_iou
from model_server.fit.diffrender import mesh_edges, project_vertices, render_silhouette
from model_server.geometry import views
from model_server.learning.data.shapes import make_shape


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sphere(radius: float = 0.6, resolution: int = 20) -> tuple[np.ndarray, np.ndarray]:
    mesh = o3d.geometry.TriangleMesh.create_sphere(radius, resolution)
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles)


def box() -> tuple[np.ndarray, np.ndarray]:
    mesh = o3d.geometry.TriangleMesh.create_box(0.9, 0.5, 1.2).subdivide_midpoint(2)
    return np.asarray(mesh.vertices) - (0.45, 0.25, 0.6), np.asarray(mesh.triangles)


TETRAHEDRON = (np.array([[-0.5, -0.4, -0.3], [0.6, -0.2, -0.35], [0.05, 0.45, -0.25], [0.1, 0.05, 0.55]]),
               np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]]))


def test_projection_matches_views_project():
    points = np.random.default_rng(0).uniform(-1, 1, (50, 3))
    for view in views.INPUT_VIEWS.values():
        rows, cols, _ = views.project(view, points, 128)
        got = project_vertices(torch.tensor(points), view, 128).numpy()
        np.testing.assert_allclose(got, np.stack([rows, cols], 1), atol=1e-9)


def test_closed_mesh_edges_all_have_two_faces():
    _, faces = sphere(resolution=8)
    edges = mesh_edges(torch.tensor(faces))
    assert len(edges) == 3 * len(faces) // 2
    assert (edges[:, 3] >= 0).all()


@pytest.mark.parametrize("name", ["tetrahedron", "icosphere"])
@pytest.mark.parametrize("view", ["front", "side", "top"])
def test_gradient_matches_finite_differences(name, view):
    if name == "tetrahedron":
        vertices, faces = TETRAHEDRON
    else:
        mesh = o3d.geometry.TriangleMesh.create_icosahedron(0.6)
        jitter = np.random.default_rng(4).normal(0.0, 0.05, (12, 3))  # generic position: no edge-on ties
        vertices, faces = np.asarray(mesh.vertices) + jitter, np.asarray(mesh.triangles)
    vertices = torch.tensor(vertices, dtype=torch.float64, requires_grad=True)
    faces = torch.tensor(faces)
    weights = torch.rand(24, 24, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def loss(v: torch.Tensor) -> torch.Tensor:
        return (render_silhouette(v, faces, views.INPUT_VIEWS[view], res=24, sigma=1.5) * weights).sum()

    loss(vertices).backward()
    assert torch.isfinite(vertices.grad).all() and vertices.grad.abs().sum() > 0
    rng = torch.Generator().manual_seed(2)
    for _ in range(3):
        direction = torch.randn(vertices.shape, generator=rng, dtype=torch.float64)
        h = 1e-6
        with torch.no_grad():
            numeric = (loss(vertices + h * direction) - loss(vertices - h * direction)) / (2 * h)
        analytic = (vertices.grad * direction).sum()
        assert abs(float(numeric - analytic)) <= 1e-5 * max(1.0, abs(float(numeric)))


def test_degenerate_and_edge_on_triangles_stay_finite():
    vertices = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.5, 0.0, 0.0],   # collapsed to a segment
                             [-0.5, 0.0, 0.0], [-0.5, 0.0, 0.5], [-0.5, 0.3, 0.0],  # edge-on in the side view
                             [0.2, 0.1, 0.2], [0.2, 0.1, 0.2], [0.2, 0.1, 0.2]],    # collapsed to a point
                            dtype=torch.float64, requires_grad=True)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    total = sum(render_silhouette(vertices, faces, view, res=32, sigma=1.0).sum()
                for view in views.INPUT_VIEWS.values())
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(vertices.grad).all()


@pytest.mark.parametrize("shape", ["sphere", "box", "chair", "airplane"])
def test_forward_silhouette_matches_ray_casting(shape):
    vertices, faces = {"sphere": sphere, "box": box}.get(shape, lambda: make_shape(shape, np.random.default_rng(3)))()
    for view in views.INPUT_VIEWS.values():
        soft = render_silhouette(torch.tensor(vertices, dtype=torch.float32), torch.tensor(faces), view, res=256)
        assert 0.0 <= float(soft.min()) and float(soft.max()) <= 1.0
        assert silhouette_iou(vertices, faces, soft.numpy() > 0.5, view) >= 0.99


def test_translated_and_scaled_sphere_is_recovered():
    vertices, faces = sphere(0.5, 16)
    base = torch.tensor(vertices, dtype=torch.float32)
    faces = torch.tensor(faces)
    edges = mesh_edges(faces)
    chosen = [views.FRONT, views.SIDE]
    true_shift, true_scale = torch.tensor([0.15, -0.1, 0.12]), 1.25
    with torch.no_grad():
        target_vertices = base * true_scale + true_shift
        targets = [render_silhouette(target_vertices, faces, view, res=96, edges=edges) for view in chosen]
    shift = torch.zeros(3, requires_grad=True)
    log_scale = torch.zeros((), requires_grad=True)
    optimiser = torch.optim.Adam([shift, log_scale], lr=0.01)
    for _ in range(150):
        optimiser.zero_grad()
        moved = base * log_scale.exp() + shift
        loss = sum(((render_silhouette(moved, faces, view, res=96, sigma=1.5, edges=edges) - target) ** 2).mean()
                   for view, target in zip(chosen, targets))
        loss.backward()
        optimiser.step()
    assert torch.allclose(shift.detach(), true_shift, atol=0.01)
    assert abs(float(log_scale.detach().exp()) - true_scale) < 0.01


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    vertices, faces = sphere()
    v = torch.tensor(vertices, dtype=torch.float32)
    cpu = render_silhouette(v, torch.tensor(faces), views.FRONT)
    gpu = render_silhouette(v.cuda(), torch.tensor(faces).cuda(), views.FRONT)
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-4)
