"""A user's scikit-learn app that lets MLflow's autologging record the fit into the trial's run
(hydra.sweeper.mlflow_autolog=true) and returns the validation accuracy."""

import hydra
from omegaconf import DictConfig
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split


@hydra.main(version_base=None, config_path="conf", config_name="sklearn")
def train(cfg: DictConfig) -> float:
    x, y = load_wine(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    model = LogisticRegression(C=cfg.C, max_iter=200).fit(x_train, y_train)
    return float(model.score(x_val, y_val))


if __name__ == "__main__":
    train()
