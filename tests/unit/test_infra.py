"""infra/main.bicep, parsed with pycep: the properties a deployment relies on.

``az`` and ``bicep`` cannot run here, so the template is checked as data: it parses, Storage takes
Entra ID only, the app's identity has exactly the data roles docs/deploy.md lists, the plan is Flex
Consumption on Python 3.11, every app setting infra/README.md requires is set (the table is parsed,
so the two cannot drift), Entra ID issues the tokens, and the Event Grid part exists only when asked
for. checkov's scan of the same folder is ``test_infra_checkov.py``.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from shared.auth.roles import Role

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BICEP = INFRA / "main.bicep"

STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"

# Settings Flex Consumption rejects or ignores (it takes runtime and deployment from functionAppConfig),
# and the connection string identity-based storage replaces.
FORBIDDEN_SETTINGS = {
    "AzureWebJobsStorage",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
}


@cache
def template() -> dict[str, Any]:
    parsed: dict[str, Any] = BicepParser(cache=False).parse(file_path=BICEP)
    return parsed


def resource(name: str) -> dict[str, Any]:
    """A resource's body, through its ``for`` loop or ``if`` condition; ``type``, ``api_version`` kept."""
    declared = template()["resources"][name]
    body = declared["config"]
    while "config" in body and ("loop_type" in body or "condition" in body):
        body = body["config"]
    return {"type": declared["type"], "api_version": declared["api_version"], **body}


def condition(name: str) -> Any:
    return template()["resources"][name]["config"].get("condition")


def resolve(value: Any) -> Any:
    """A bare identifier resolved to its variable's value or its parameter's default, as deployed
    with the default parameters (pycep writes identifiers and string literals alike as strings)."""
    variables, parameters = template()["variables"], template()["parameters"]
    while isinstance(value, str):
        if value in variables:
            value = variables[value]["value"]
        elif value in parameters and parameters[value].get("default") is not None:
            value = parameters[value]["default"]
        else:
            break
    return value


def app_settings() -> dict[str, Any]:
    entries = resource("functionApp")["properties"]["siteConfig"]["appSettings"]
    names = [entry["name"] for entry in entries]
    assert len(names) == len(set(names)), "an app setting is listed twice"
    return {entry["name"]: entry["value"] for entry in entries}


def accessor(value: Any) -> str:
    """``a.b.c`` for pycep's nested property accessors (``storage.properties.primaryEndpoints.blob``)."""
    if isinstance(value, str):
        return value
    operands = value["operator"]["operands"]
    assert value["operator"]["type"] == "property_accessor", value
    return f"{accessor(operands['operand_1'])}.{accessor(operands['operand_2'])}"


def readme_settings() -> dict[str, str]:
    """infra/README.md's table of app settings: name → the value cell."""
    rows: dict[str, str] = {}
    for line in (INFRA / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and (match := re.fullmatch(r"`([A-Za-z][A-Za-z0-9_]*)`.*", cells[0])):
            rows[match.group(1)] = cells[1]
    return rows


def required_readme_settings() -> dict[str, str]:
    """The rows whose value is a literal (`` `amlpipe-runs` ``): the settings the app cannot start without."""
    required = {}
    for name, cell in readme_settings().items():
        if match := re.fullmatch(r"`([^`]+)`", cell):
            required[name] = match.group(1)
    return required


def test_the_template_parses_with_every_part() -> None:
    assert set(template()["resources"]) >= {
        "storage",
        "plan",
        "functionApp",
        "logAnalytics",
        "appInsights",
        "storageRoleAssignments",
        "telemetryRoleAssignment",
        "blobEventsTopic",
        "blobTriggerSubscription",
    }


def test_storage_takes_entra_id_only_over_tls_12_and_nothing_is_public() -> None:
    storage = resource("storage")
    properties = storage["properties"]
    assert storage["type"] == "Microsoft.Storage/storageAccounts"
    assert properties["allowSharedKeyAccess"] is False
    assert properties["defaultToOAuthAuthentication"] is True
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["allowBlobPublicAccess"] is False
    assert properties["supportsHttpsTrafficOnly"] is True
    assert properties["allowCrossTenantReplication"] is False
    for container in ("packageContainer", "datastoreContainer"):
        assert resource(container)["properties"]["publicAccess"] == "None"


def test_storage_holds_the_deployment_package_the_default_container_and_the_queues() -> None:
    deployment = resource("functionApp")["properties"]["functionAppConfig"]["deployment"]["storage"]
    assert deployment["type"] == "blobContainer"
    assert deployment["authentication"] == {"type": "SystemAssignedIdentity"}
    assert deployment["value"] == "${storage.properties.primaryEndpoints.blob}${deploymentContainer}"
    assert resource("packageContainer")["name"] == "deploymentContainer"
    assert resolve(resource("datastoreContainer")["name"]) == "azureml-blobstore"
    queues = resource("queues")
    assert queues["parent"] == "queueService"
    assert template()["resources"]["queues"]["config"]["loop_type"]["detail"]["array_name"] == "appQueues"
    listed = [resolve(q) for q in resolve("appQueues")]
    assert {"amlpipe-runs", "amlpipe-steps", "amlpipe-schedule-fires"} <= set(listed)


def test_the_plan_is_flex_consumption_on_linux_with_python_311() -> None:
    plan = resource("plan")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True  # Linux
    app = resource("functionApp")
    assert app["kind"] == "functionapp,linux"
    assert accessor(app["properties"]["serverFarmId"]) == "plan.id"
    config = app["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    scale = config["scaleAndConcurrency"]
    assert resolve(scale["maximumInstanceCount"]) == 40
    assert resolve(scale["instanceMemoryMB"]) in (512, 2048, 4096)
    assert resource("functionApp")["api_version"] >= "2023-12-01"  # functionAppConfig arrived then


def test_the_app_has_a_system_assigned_identity_https_only_and_no_basic_auth_publishing() -> None:
    app = resource("functionApp")
    assert app["identity"] == {"type": "SystemAssigned"}
    assert app["properties"]["httpsOnly"] is True
    site = app["properties"]["siteConfig"]
    assert site["minTlsVersion"] == "1.2"
    assert site["ftpsState"] == "Disabled"
    for policy in ("scmBasicAuth", "ftpBasicAuth"):
        assert resource(policy)["properties"] == {"allow": False}


def test_storage_is_reached_by_identity_based_connections_only() -> None:
    settings = app_settings()
    assert accessor(settings["AzureWebJobsStorage__accountName"]) == "storage.name"
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    for service in ("blob", "queue", "table"):
        uri = settings[f"AzureWebJobsStorage__{service}ServiceUri"]
        assert accessor(uri) == f"storage.properties.primaryEndpoints.{service}"
    assert not FORBIDDEN_SETTINGS & set(settings)
    text = json.dumps(settings)
    assert "AccountKey" not in text and "listKeys" not in text


def test_the_identity_has_the_least_storage_data_roles_scoped_to_the_account() -> None:
    assignments = resource("storageRoleAssignments")
    loop = template()["resources"]["storageRoleAssignments"]["config"]["loop_type"]["detail"]
    roles = resolve(loop["array_name"])
    assert sorted(role["id"] for role in roles) == sorted(
        [STORAGE_BLOB_DATA_OWNER, STORAGE_QUEUE_DATA_CONTRIBUTOR, STORAGE_TABLE_DATA_CONTRIBUTOR]
    )
    assert assignments["scope"] == "storage"
    properties = assignments["properties"]
    assert accessor(properties["principalId"]) == "functionApp.identity.principalId"
    assert properties["principalType"] == "ServicePrincipal"
    role_id = properties["roleDefinitionId"]["function"]
    assert role_id["type"] == "subscription_resource_id"
    assert role_id["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
    assert accessor(role_id["parameters"]["resource_name_1"]) == f"{loop['item_name']}.id"


def test_telemetry_goes_to_application_insights_on_log_analytics_with_entra_id() -> None:
    insights = resource("appInsights")["properties"]
    assert accessor(insights["WorkspaceResourceId"]) == "logAnalytics.id"
    assert insights["DisableLocalAuth"] is True
    settings = app_settings()
    assert accessor(settings["APPLICATIONINSIGHTS_CONNECTION_STRING"]) == "appInsights.properties.ConnectionString"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD"
    publisher = resource("telemetryRoleAssignment")
    assert publisher["scope"] == "appInsights"
    role_name = publisher["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
    assert resolve(role_name) == MONITORING_METRICS_PUBLISHER
    assert accessor(publisher["properties"]["principalId"]) == "functionApp.identity.principalId"


def test_every_setting_infra_readme_requires_is_set_to_its_value() -> None:
    required = required_readme_settings()
    assert len(required) >= 7, f"infra/README.md's settings table did not parse: {required}"
    settings = app_settings()
    for name, value in required.items():
        assert name in settings, f"{name} (infra/README.md) is not set by infra/main.bicep"
        assert resolve(settings[name]) == value, name


def test_every_amlpipe_setting_of_local_settings_is_set_on_azure_too() -> None:
    local = json.loads((ROOT / "local.settings.json").read_text(encoding="utf-8"))["Values"]
    settings = app_settings()
    for name, value in local.items():
        if name.startswith("AMLPIPE_"):
            assert resolve(settings.get(name)) == value, name


def test_tokens_come_from_entra_id_with_its_v2_issuer_audience_and_keys() -> None:
    settings = app_settings()
    assert {"AMLPIPE_AUTH_ISSUER", "AMLPIPE_AUTH_AUDIENCE", "AMLPIPE_AUTH_JWKS_URL"} <= set(settings)
    issuer, audience, jwks = (
        resolve(settings[name]) for name in ("AMLPIPE_AUTH_ISSUER", "AMLPIPE_AUTH_AUDIENCE", "AMLPIPE_AUTH_JWKS_URL")
    )
    login = "${environment().authentication.loginEndpoint}"
    assert issuer == f"{login}${{tenantId}}/v2.0"
    assert jwks == f"{login}${{tenantId}}/discovery/v2.0/keys"
    # A v2 access token's aud is the API app's client id; apiAppId has no default: it must be given.
    assert settings["AMLPIPE_AUTH_AUDIENCE"] == "authAudience" and audience == "apiAppId"
    assert template()["parameters"]["apiAppId"].get("default") is None
    tenant = template()["parameters"]["tenantId"]["default"]["operator"]["operands"]
    assert tenant == {"operand_1": {"function": {"type": "tenant"}}, "operand_2": "tenantId"}


def test_the_app_roles_of_the_entra_registration_are_our_roles() -> None:
    roles = json.loads((INFRA / "entra-app-roles.json").read_text(encoding="utf-8"))
    assert [role["value"] for role in roles] == [role.value for role in Role]
    assert len({role["id"] for role in roles}) == len(roles)
    for role in roles:
        assert set(role["allowedMemberTypes"]) == {"Application", "User"}
        assert role["isEnabled"] is True


def test_event_grid_is_deployed_only_when_the_parameter_asks_for_it() -> None:
    subscribe = template()["parameters"]["blobEventSubscription"]
    assert subscribe["type"] == "bool" and subscribe["default"] is False
    assert template()["variables"]["useEventGrid"]["value"] == "blobEventSubscription"
    assert condition("blobEventsTopic") == "useEventGrid"
    assert condition("blobTriggerSubscription") == "useEventGrid"
    unconditional = [name for name in template()["resources"] if name.startswith("blob") and not condition(name)]
    assert unconditional == ["blobService"]


def test_the_event_subscription_feeds_blob_created_in_the_default_container_to_the_blob_trigger() -> None:
    topic = resource("blobEventsTopic")["properties"]
    assert accessor(topic["source"]) == "storage.id"
    assert topic["topicType"] == "Microsoft.Storage.StorageAccounts"
    subscription = resource("blobTriggerSubscription")["properties"]
    assert subscription["filter"]["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert subscription["filter"]["subjectBeginsWith"] == "/blobServices/default/containers/${defaultContainer}/"
    destination = subscription["destination"]
    assert destination["endpointType"] == "WebHook"
    url = destination["properties"]["endpointUrl"]
    assert url.startswith("https://${functionApp.properties.defaultHostName}/runtime/webhooks/blobs?")
    assert "functionName=Host.Functions.${blobTriggerFunctionName}" in url
    assert "&code=${useEventGrid ? hostKeys.listKeys().systemKeys.blobs_extension : ''}" in url
    assert resource("hostKeys")["name"] == "default" and template()["resources"]["hostKeys"]["existing"] is True


def test_the_webhook_names_the_apps_blob_trigger_function() -> None:
    name = resolve("blobTriggerFunctionName")
    source = (ROOT / "functions" / "schedule_watches.py").read_text(encoding="utf-8")
    trigger = re.search(rf"@bp\.blob_trigger\(((?:[^()]|\([^()]*\))*)\)\s*\ndef {name}\(", source)
    assert trigger, name
    # Flex Consumption loads only Event Grid blob triggers: the app takes its source from the setting.
    assert "source=blob_trigger_source(os.environ)" in trigger.group(1)
    assert app_settings()["AMLPIPE_BLOB_TRIGGER_SOURCE"] == "EventGrid"


def test_outputs_carry_no_secret() -> None:
    outputs = template()["outputs"]
    assert {"functionAppName", "functionAppUrl", "storageAccountName"} <= set(outputs)
    for name, output in outputs.items():
        text = json.dumps(output["value"])
        for secret in ("listKeys", "list_keys", "ConnectionString", "InstrumentationKey", "AccountKey", "keys"):
            assert secret not in text, f"output {name} exposes {secret}"
        assert not any(d["type"] == "secure" for d in output["decorators"]), name


def test_the_parameters_file_names_only_parameters_of_the_template_with_allowed_values() -> None:
    document = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    assert document["$schema"].endswith("/deploymentParameters.json#")
    parameters = template()["parameters"]
    for name, entry in document["parameters"].items():
        assert name in parameters, f"main.parameters.json sets {name}, which main.bicep does not declare"
        allowed = [d["argument"] for d in parameters[name]["decorators"] if d["type"] == "allowed"]
        if allowed:
            assert entry["value"] in allowed[0], name


def test_every_checkov_suppression_gives_its_reason() -> None:
    skips = re.findall(r"checkov:skip=([A-Z0-9_]+)(.*)", BICEP.read_text(encoding="utf-8"))
    assert skips, "no suppression found: update this test and docs/deploy.md if that is on purpose"
    for check, rest in skips:
        reason = rest.removeprefix(":").strip()
        assert len(reason) >= 40, f"{check} is suppressed without a real reason"


@pytest.mark.parametrize("check", sorted(set(re.findall(r"checkov:skip=([A-Z0-9_]+)", BICEP.read_text("utf-8")))))
def test_every_suppression_is_listed_in_the_deploy_guide(check: str) -> None:
    assert check in (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
