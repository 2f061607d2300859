import pytorch_lightning as pl
from pytorch_lightning.demos.boring_classes import BoringModel

from fashion_retrieval.callbacks import EpochTimer


def test_one_positive_duration_per_training_epoch():
    timer = EpochTimer()
    trainer = pl.Trainer(
        max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_train_batches=2, limit_val_batches=0, callbacks=[timer],
    )  # fmt: skip
    trainer.fit(BoringModel())
    assert len(timer.seconds) == 3 and all(seconds > 0 for seconds in timer.seconds)
