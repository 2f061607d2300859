from collections import deque

import pytest
import torch
import torch.nn.functional as F

from fashion_retrieval.losses import CrossBatchMemory, append_negatives, info_nce
from fashion_retrieval.miners import label_in, pair_masks


def padded(rows, width):
    out = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


@pytest.mark.parametrize("size", [1, 5, 8])
def test_ring_buffer_matches_a_deque(size):
    memory = CrossBatchMemory(size=size, dim=3)
    reference: deque = deque(maxlen=size)
    generator = torch.Generator().manual_seed(size)
    next_label = 0
    for count in [0, 3, 1, size, 2 * size + 1, 4, 0, 7, size - 1]:
        embeddings = torch.randn(count, 3, generator=generator)
        labels = torch.arange(next_label, next_label + count)
        next_label += count
        memory.enqueue(embeddings, labels)
        reference.extend(zip(labels.tolist(), embeddings.tolist()))
        stored_embeddings, stored_labels = memory.contents()
        assert memory.filled == len(reference)
        assert stored_labels.tolist() == [label for label, _ in reference]
        assert torch.equal(stored_embeddings, torch.tensor([e for _, e in reference]).reshape(-1, 3))
        assert int(memory.queue_pointer) == next_label % size


def test_negatives_use_only_filled_slots_and_mask_excluded_products():
    memory = CrossBatchMemory(size=6, dim=2)
    memory.enqueue(torch.randn(4, 2), torch.tensor([10, 11, 12, 11]))
    excluded = padded([[11], [12, 99], []], 2)
    embeddings, mask = memory.negatives(excluded)
    assert embeddings.shape == (4, 2) and mask.shape == (3, 4)
    expected = [[label not in row for label in [10, 11, 12, 11]] for row in [[11], [12, 99], []]]
    assert mask.tolist() == expected
    assert mask.tolist() == (~label_in(torch.tensor([10, 11, 12, 11]), excluded)).tolist()
    empty_embeddings, empty_mask = CrossBatchMemory(3, 2).negatives(excluded)
    assert empty_embeddings.shape == (0, 2) and empty_mask.shape == (3, 0)


def test_enqueue_detaches_and_validates():
    memory = CrossBatchMemory(size=4, dim=2)
    source = torch.randn(2, 2, requires_grad=True)
    memory.enqueue(source.bfloat16(), torch.tensor([1, 2]))
    assert not memory.queue_embeddings.requires_grad and memory.queue_embeddings.dtype == torch.float32
    with pytest.raises(ValueError, match="embeddings must be"):
        memory.enqueue(torch.randn(2, 3), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="labels must be"):
        memory.enqueue(torch.randn(2, 2), torch.tensor([1]))
    with pytest.raises(ValueError, match=">= 0"):
        memory.enqueue(torch.randn(1, 2), torch.tensor([-1]))
    memory.reset()
    assert memory.filled == 0 and memory.contents()[1].numel() == 0


def test_checkpoint_round_trip_resumes_the_same_queue(tmp_path):
    memory = CrossBatchMemory(size=5, dim=3)
    memory.enqueue(torch.randn(7, 3), torch.arange(7))  # wrapped once
    path = tmp_path / "memory.pt"
    torch.save({"loss": memory.state_dict()}, path)
    assert set(memory.state_dict()) == {"queue_embeddings", "queue_labels", "queue_pointer", "queue_filled"}
    resumed = CrossBatchMemory(size=5, dim=3)
    resumed.load_state_dict(torch.load(path)["loss"])
    batch, labels = torch.randn(2, 3), torch.tensor([7, 8])
    memory.enqueue(batch, labels)
    resumed.enqueue(batch, labels)
    for original, restored in zip(memory.contents(), resumed.contents()):
        assert torch.equal(original, restored)
    assert resumed.filled == 5 and resumed.contents()[1].tolist() == [4, 5, 6, 7, 8]


def test_memory_negatives_plug_into_the_losses():
    generator = torch.Generator().manual_seed(0)
    query = F.normalize(torch.randn(2, 4, generator=generator), dim=1)
    gallery = F.normalize(torch.randn(3, 4, generator=generator), dim=1)
    products, excluded = padded([[0, 1], [2]], 2), padded([[0, 1, 5], [2]], 3)
    positive, negative = pair_masks(products, excluded, torch.tensor([0, 1, 2]))
    memory = CrossBatchMemory(size=4, dim=4)
    memory.enqueue(torch.cat([query[:1], gallery[:1]]), torch.tensor([7, 5]))  # 5: excluded for bundle 0
    extra, extra_negative = memory.negatives(excluded)
    all_gallery, all_positive, all_negative = append_negatives(
        gallery.bfloat16(), positive, negative, extra, extra_negative
    )
    assert all_gallery.dtype == torch.float32 and all_gallery.shape == (5, 4)
    assert all_positive[:, 3:].sum() == 0
    assert all_negative[:, 3:].tolist() == [[True, False], [True, True]]
    with_memory = info_nce(query, all_gallery, 0.1, all_positive, all_negative)
    without = info_nce(query, gallery.bfloat16().float(), 0.1, positive, negative)
    assert with_memory.item() > without.item()  # a copy of bundle 0 in memory is a very hard negative
