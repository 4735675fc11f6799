"""The amlpipe Functions app: builds the FunctionApp and registers one blueprint per area."""

import azure.functions as func

from functions.auth import bp as auth_bp
from functions.health import bp as health_bp

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(health_bp)
app.register_functions(auth_bp)
