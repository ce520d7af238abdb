import math

import pytest
import torch

from m2pt.models import farthest_point_sample, group_points, knn_indices, three_nn_interpolate


def naive_fps(cloud, num_samples, start=0):
    """Per-cloud reference with Python loops: each pick maximises the distance to the nearest pick."""
    chosen = [start]
    for _ in range(num_samples - 1):
        best, best_dist = None, -1.0
        for i in range(cloud.shape[0]):
            nearest = min(float(((cloud[i] - cloud[j]) ** 2).sum()) for j in chosen)
            if nearest > best_dist:
                best, best_dist = i, nearest
        chosen.append(best)
    return chosen


def test_fps_matches_naive_reference_and_batches():
    clouds = torch.rand(3, 40, 3)
    batched = farthest_point_sample(clouds, 8)
    for b in range(3):
        assert batched[b].tolist() == naive_fps(clouds[b], 8)
        assert torch.equal(farthest_point_sample(clouds[b : b + 1], 8)[0], batched[b])


def test_fps_is_max_min_distance_set():
    cloud = torch.rand(1, 60, 3)
    picks = farthest_point_sample(cloud, 10)[0]
    for k in range(1, 10):
        dist_to_picked = torch.cdist(cloud[0], cloud[0, picks[:k]]).min(dim=1).values
        assert dist_to_picked[picks[k]] == pytest.approx(float(dist_to_picked.max()))


def test_fps_generator_start_is_reproducible():
    clouds = torch.rand(4, 50, 3)
    first = farthest_point_sample(clouds, 6, torch.Generator().manual_seed(3))
    second = farthest_point_sample(clouds, 6, torch.Generator().manual_seed(3))
    assert torch.equal(first, second)
    starts = torch.randint(50, (4,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(first[:, 0], starts)
    for b in range(4):
        assert first[b].tolist() == naive_fps(clouds[b], 6, start=int(starts[b]))


def test_knn_matches_brute_force():
    points, queries = torch.rand(2, 50, 3), torch.rand(2, 7, 3)
    found = knn_indices(queries, points, 5)
    for b in range(2):
        for q in range(7):
            dists = [float(((queries[b, q] - p) ** 2).sum()) for p in points[b]]
            assert found[b, q].tolist() == sorted(range(50), key=dists.__getitem__)[:5]


def test_group_points_centred_neighbourhoods():
    points = torch.rand(2, 64, 3)
    neighborhood, center = group_points(points, num_groups=8, group_size=4)
    assert neighborhood.shape == (2, 8, 4, 3) and center.shape == (2, 8, 3)
    torch.testing.assert_close(neighborhood[:, :, 0], torch.zeros(2, 8, 3))  # nearest neighbour = centre
    absolute = neighborhood + center[:, :, None]
    assert all(any(torch.equal(p, q) for q in points[0]) for p in absolute[0].reshape(-1, 3))


def test_point_ops_errors():
    with pytest.raises(ValueError, match="cannot sample 9 points"):
        farthest_point_sample(torch.rand(1, 8, 3), 9)
    with pytest.raises(ValueError, match="cannot take 9 nearest"):
        knn_indices(torch.rand(1, 2, 3), torch.rand(1, 8, 3), 9)


def test_three_nn_interpolation():
    sources = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5]]])
    features = torch.tensor([[[1.0], [2.0], [3.0], [100.0]]])
    at_sources = three_nn_interpolate(sources, sources, features)
    torch.testing.assert_close(at_sources, features, atol=1e-5, rtol=0)
    target = torch.tensor([[[0.5, 0.0, 0.0]]])
    d2 = torch.tensor([0.25, 0.25, 1.25])  # to (0,0,0), (1,0,0), (0,1,0); (5,5,5) is not among the 3 nearest
    weights = (1 / d2) / (1 / d2).sum()
    expected = (weights * torch.tensor([1.0, 2.0, 3.0])).sum()
    assert three_nn_interpolate(target, sources, features).item() == pytest.approx(expected.item(), rel=1e-5)
