"""Step 2 of the DP-100 pipeline: train a logistic regression with the ``reg_rate`` parameter, register it.

As in the DP-100 module, the regularisation rate arrives as ``--reg`` (a PipelineParameter) and the data
as ``--folder`` (the PipelineData the first step wrote). The model is saved under ``outputs/`` (uploaded
with the step's artifacts) and registered from there with ``run.register_model``. Each cross-validation
fold's accuracy is logged under one name, so the studio draws it as a chart (azureml's studio did the
same for a metric logged more than once).
"""

import argparse
import os

import joblib
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_score, train_test_split

from amlpipe.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--folder", type=str, dest="folder", help="the prepared data (PipelineData)")
parser.add_argument("--reg", type=float, dest="reg", default=0.01, help="regularisation rate")
args = parser.parse_args()

run = Run.get_context()

print("Loading Data...")
diabetes = pd.read_csv(os.path.join(args.folder, "prepped_data.csv"))
features = [
    "Pregnancies",
    "PlasmaGlucose",
    "DiastolicBloodPressure",
    "TricepsThickness",
    "SerumInsulin",
    "BMI",
    "DiabetesPedigree",
    "Age",
]
X, y = diabetes[features].values, diabetes["Diabetic"].values
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.30, random_state=0)

print("Training a logistic regression model with regularization rate of", args.reg)
run.log("Regularization Rate", float(args.reg))
for fold_accuracy in cross_val_score(LogisticRegression(C=1 / args.reg, solver="liblinear"), X_train, y_train, cv=5):
    run.log("Fold accuracy", float(fold_accuracy))
model = LogisticRegression(C=1 / args.reg, solver="liblinear").fit(X_train, y_train)

accuracy = float((model.predict(X_test) == y_test).mean())
auc = float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]))
print("Accuracy:", accuracy, "AUC:", auc)
run.log("Accuracy", accuracy)
run.log("AUC", auc)

os.makedirs("outputs", exist_ok=True)
joblib.dump(value=model, filename="outputs/diabetes_model.pkl")

run.register_model(
    model_path="outputs/diabetes_model.pkl",
    model_name="diabetes_model",
    tags={"Training context": "Pipeline"},
    properties={"AUC": str(auc), "Accuracy": str(accuracy)},
)
run.complete()
