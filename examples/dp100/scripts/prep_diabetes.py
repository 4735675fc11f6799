"""Step 1 of the DP-100 pipeline: read the raw dataset, drop nulls, scale the features, save for training.

The same code as the DP-100 lab's ``prep_diabetes.py``, with ``azureml.`` replaced by ``amlpipe.``.
"""

import argparse
import os

from sklearn.preprocessing import MinMaxScaler

from amlpipe.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--folder", type=str, dest="folder", help="where the prepared data goes (PipelineData)")
args = parser.parse_args()
output_folder = args.folder

# The step's run context: its input datasets and where its metrics go.
run = Run.get_context()

print("Loading Data...")
diabetes = run.input_datasets["raw_data"].to_pandas_dataframe()
run.log("raw_rows", len(diabetes))

diabetes = diabetes.dropna()
features = [
    "Pregnancies",
    "PlasmaGlucose",
    "DiastolicBloodPressure",
    "TricepsThickness",
    "SerumInsulin",
    "BMI",
    "DiabetesPedigree",
]
diabetes[features] = MinMaxScaler().fit_transform(diabetes[features])
run.log("processed_rows", len(diabetes))

print("Saving Data...")
os.makedirs(output_folder, exist_ok=True)
diabetes.to_csv(os.path.join(output_folder, "prepped_data.csv"), index=False, header=True)
run.complete()
