"""infra/main.bicep and infra/eventgrid.bicep, parsed with pycep: the properties a deployment relies on.

``az`` and ``bicep`` cannot run here, so the templates are checked as data: they parse, Storage takes
Entra ID only, the app's identity has exactly the data roles docs/deploy.md lists, the plan is Flex
Consumption on Python 3.11, every app setting infra/README.md requires is set (the table is parsed,
so the two cannot drift) and ``extraAppSettings`` is merged in, the Python worker has a thread for each
queue message an instance may hold, Entra ID issues the tokens and only its are accepted by default,
and the Event Grid subscription lives in a template of its own that never writes the site. checkov's
scan of the same folder is ``test_infra_checkov.py``.
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
from shared.auth.service import LOCAL_TOKENS_SETTING, local_tokens_from

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BICEP = INFRA / "main.bicep"
EVENTGRID = INFRA / "eventgrid.bicep"
TEMPLATES = sorted(INFRA.glob("*.bicep"))

#: The largest PYTHON_THREADPOOL_THREAD_COUNT the Functions documentation allows.
MAX_PYTHON_THREADS = 32

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

# AMLPIPE_ settings of local.settings.json that Azure sets to another value on purpose.
DIFFERENT_ON_AZURE = {
    # Locally the SDK and the CLI sign in with amlpipe service principals; Azure takes Entra ID tokens.
    LOCAL_TOKENS_SETTING: "disabled",
}


@cache
def parse(path: Path) -> dict[str, Any]:
    parsed: dict[str, Any] = BicepParser(cache=False).parse(file_path=path)
    return parsed


def template() -> dict[str, Any]:
    return parse(BICEP)


def eventgrid() -> dict[str, Any]:
    return parse(EVENTGRID)


def resource(name: str, parsed: dict[str, Any] | None = None) -> dict[str, Any]:
    """A resource's body, through its ``for`` loop or ``if`` condition; ``type``, ``api_version`` kept."""
    declared = (parsed or template())["resources"][name]
    body = declared["config"]
    while "config" in body and ("loop_type" in body or "condition" in body):
        body = body["config"]
    return {"type": declared["type"], "api_version": declared["api_version"], **body}


def condition(name: str, parsed: dict[str, Any] | None = None) -> Any:
    return (parsed or template())["resources"][name]["config"].get("condition")


def resolve(value: Any, parsed: dict[str, Any] | None = None, given: dict[str, Any] | None = None) -> Any:
    """A value as deployed with the parameters' defaults, or the ``given`` parameters: identifiers
    resolved to their variable's value or their parameter's value (pycep writes identifiers and string
    literals alike as strings), ``${identifier}`` in strings, ``string()``, ``empty()``, ``+`` and
    ``?:``. Anything else is left as pycep's tree."""
    parsed = parsed or template()
    given = given or {}
    variables, parameters = parsed["variables"], parsed["parameters"]

    def value_of(item: Any) -> Any:
        return resolve(item, parsed, given)

    if isinstance(value, str):
        if value in given:
            return given[value]
        if value in variables:
            return value_of(variables[value]["value"])
        if value in parameters and parameters[value].get("default") is not None:
            return value_of(parameters[value]["default"])

        def interpolate(match: re.Match[str]) -> str:
            item = value_of(match.group(1))
            return str(item) if isinstance(item, str | int) and item != match.group(1) else match.group(0)

        return re.sub(r"\$\{(\w+)\}", interpolate, value)
    if isinstance(value, dict) and "function" in value:
        function = value["function"]
        arguments = [value_of(argument) for argument in function.get("parameters", {}).values()]
        if function["type"] == "string" and isinstance(arguments[0], str | int):
            return str(arguments[0])
        if function["type"] == "empty" and isinstance(arguments[0], str | list | dict):
            return len(arguments[0]) == 0
    if isinstance(value, dict) and "operator" in value:
        operator, operands = value["operator"]["type"], value["operator"]["operands"]
        if operator == "add":
            left, right = value_of(operands["operand_1"]), value_of(operands["operand_2"])
            if isinstance(left, int) and isinstance(right, int):
                return left + right
        if operator == "conditional":
            test = value_of(operands["condition"])
            if isinstance(test, bool):
                return value_of(operands["true_value"] if test else operands["false_value"])
    return value


def merged_app_settings(extra: dict[str, str] | None = None) -> dict[str, Any]:
    """The site's app settings as deployed with ``extraAppSettings=extra``: the template's own
    (``baseAppSettings``) less those ``extra`` names, then ``extra``'s. The expression that does this in
    main.bicep is checked by ``test_extra_app_settings_are_merged_in_by_name``."""
    entries = template()["variables"]["baseAppSettings"]["value"]
    names = [entry["name"] for entry in entries]
    assert len(names) == len(set(names)), "an app setting is listed twice"
    extra = extra or {}
    return {**{entry["name"]: entry["value"] for entry in entries if entry["name"] not in extra}, **extra}


def app_settings() -> dict[str, Any]:
    """The app settings as deployed with the default parameters (no extraAppSettings)."""
    return merged_app_settings()


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
    }
    assert set(eventgrid()["resources"]) == {
        "functionApp",
        "hostKeys",
        "storage",
        "newSystemTopic",
        "systemTopic",
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
    assert {"PYTHON_THREADPOOL_THREAD_COUNT", LOCAL_TOKENS_SETTING} <= set(required)


def test_every_amlpipe_setting_of_local_settings_is_set_on_azure_too() -> None:
    local = json.loads((ROOT / "local.settings.json").read_text(encoding="utf-8"))["Values"]
    settings = app_settings()
    for name, value in local.items():
        if name.startswith("AMLPIPE_"):
            assert resolve(settings.get(name)) == DIFFERENT_ON_AZURE.get(name, value), name


def test_extra_app_settings_are_merged_in_by_name() -> None:
    parameter = template()["parameters"]["extraAppSettings"]
    assert parameter["type"] == "object" and parameter["default"] == {}
    # appSettings: concat(filter(baseAppSettings, s => !contains(extraAppSettings, s.name)), extraAppSettingsList)
    merge = resource("functionApp")["properties"]["siteConfig"]["appSettings"]["function"]
    assert merge["type"] == "concat"
    kept, added = merge["parameters"]["arg_1"]["function"], merge["parameters"]["arg_2"]
    assert kept["type"] == "filter" and kept["parameters"]["input_array"] == "baseAppSettings"
    keep = kept["parameters"]["expression"]
    assert keep["type"] == "lambda_expression"
    negation = keep["detail"]["expression"]["operator"]
    assert negation["type"] == "not"
    contains = negation["operands"]["bool_value"]["function"]
    assert contains["type"] == "contains" and contains["parameters"]["container"] == "extraAppSettings"
    assert accessor(contains["parameters"]["item_to_find"]) == f"{keep['detail']['var_1']}.name"
    # extraAppSettingsList: [for setting in items(extraAppSettings): {name: setting.key, value: string(setting.value)}]
    assert added == "extraAppSettingsList"
    pairs = template()["variables"]["extraAppSettingsList"]["value"]
    loop = pairs["loop_type"]["detail"]
    assert loop["array_name"] == {"function": {"type": "items", "parameters": {"arg_1": "extraAppSettings"}}}
    item = loop["item_name"]
    assert accessor(pairs["config"]["name"]) == f"{item}.key"
    converted = pairs["config"]["value"]["function"]
    assert converted["type"] == "string" and accessor(converted["parameters"]["value_to_convert"]) == f"{item}.value"
    # What that deploys: a Key Vault reference added, a template setting replaced, the rest kept.
    key = "@Microsoft.KeyVault(VaultName=vault;SecretName=amlpipe-token-signing-key)"
    merged = merged_app_settings({"AMLPIPE_TOKEN_SIGNING_KEY": key, "AMLPIPE_WATCHDOG_SCHEDULE": "0 * * * * *"})
    assert "AMLPIPE_TOKEN_SIGNING_KEY" not in app_settings()
    assert merged["AMLPIPE_TOKEN_SIGNING_KEY"] == key
    assert merged["AMLPIPE_WATCHDOG_SCHEDULE"] == "0 * * * * *"
    assert set(merged) == set(app_settings()) | {"AMLPIPE_TOKEN_SIGNING_KEY"}


def test_the_worker_has_a_thread_for_each_queue_message_an_instance_may_have_in_flight() -> None:
    # execute_step and advance_run are synchronous: the Python worker runs them on its thread pool, and a
    # message past the pool's size waits in the worker while its functionTimeout runs.
    queues = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))["extensions"]["queues"]
    assert resolve("queueBatchSize") == queues["batchSize"]
    settings = app_settings()
    threshold = int(resolve(settings["AzureFunctionsJobHost__extensions__queues__newBatchThreshold"]))
    threads = int(resolve(settings["PYTHON_THREADPOOL_THREAD_COUNT"]))
    assert 1 <= threshold <= queues["batchSize"]
    assert queues["batchSize"] + threshold <= threads <= MAX_PYTHON_THREADS


def test_only_entra_id_tokens_are_accepted_unless_local_tokens_are_enabled() -> None:
    parameter = template()["parameters"]["localTokens"]
    assert parameter["type"] == "string" and parameter["default"] == "disabled"
    allowed = [d["argument"] for d in parameter["decorators"] if d["type"] == "allowed"]
    assert allowed == [["disabled", "enabled"]]
    settings = app_settings()
    assert settings[LOCAL_TOKENS_SETTING] == "localTokens"
    assert resolve(settings[LOCAL_TOKENS_SETTING]) == "disabled"
    # The app takes both values, and the default turns its own tokens off...
    assert [local_tokens_from({LOCAL_TOKENS_SETTING: value}) for value in allowed[0]] == [False, True]
    # ...which it may only with an external issuer to accept instead: the template always sets one.
    assert {"AMLPIPE_AUTH_ISSUER", "AMLPIPE_AUTH_AUDIENCE", "AMLPIPE_AUTH_JWKS_URL"} <= set(settings)


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


def test_main_bicep_holds_no_event_grid_part_and_never_reads_a_key() -> None:
    # Enabling Event Grid must not PUT the site (which restarts it before Event Grid's handshake).
    assert not [name for name, r in template()["resources"].items() if r["type"].startswith("Microsoft.EventGrid/")]
    assert "blobEventSubscription" not in template()["parameters"]
    assert "useEventGrid" not in template()["variables"]
    assert "listKeys" not in BICEP.read_text(encoding="utf-8")
    # Flex Consumption loads only Event Grid blob triggers: the app's setting stays with the app.
    assert app_settings()["AMLPIPE_BLOB_TRIGGER_SOURCE"] == "EventGrid"


def test_the_event_grid_template_only_references_the_app_and_the_account() -> None:
    resources = eventgrid()["resources"]
    written = {name for name, declared in resources.items() if not declared["existing"]}
    assert written == {"newSystemTopic", "blobTriggerSubscription"}
    assert {resources[name]["type"] for name in written} <= {
        "Microsoft.EventGrid/systemTopics",
        "Microsoft.EventGrid/systemTopics/eventSubscriptions",
    }
    assert resources["functionApp"]["type"] == "Microsoft.Web/sites"
    assert resource("functionApp", eventgrid())["name"] == "functionAppName"
    assert resources["storage"]["type"] == "Microsoft.Storage/storageAccounts"
    assert resource("storage", eventgrid())["name"] == "storageAccountName"
    parameters = eventgrid()["parameters"]
    assert parameters["functionAppName"].get("default") is None
    assert parameters["storageAccountName"].get("default") is None
    assert parameters["defaultContainer"]["default"] == template()["parameters"]["defaultContainer"]["default"]
    assert parameters["existingSystemTopicName"]["default"] == ""
    # main.bicep's outputs give what eventgrid.bicep is deployed with.
    assert {"functionAppName", "storageAccountName", "defaultContainer", "location"} <= set(template()["outputs"])
    assert {"functionAppName", "storageAccountName", "defaultContainer"} <= set(parameters)
    # A system topic must be in its source's region: taken from the account, not a parameter.
    assert "location" not in parameters
    assert accessor(resource("newSystemTopic", eventgrid())["location"]) == "storage.location"


def test_a_system_topic_is_created_unless_the_account_has_one_already() -> None:
    parsed = eventgrid()
    assert condition("newSystemTopic", parsed) == "createSystemTopic"
    topic = resource("newSystemTopic", parsed)
    assert topic["name"] == "systemTopicName"
    assert accessor(topic["properties"]["source"]) == "storage.id"
    assert topic["properties"]["topicType"] == "Microsoft.Storage.StorageAccounts"
    # The subscription goes under whichever topic the name designates, after it is created if it is new.
    chosen = parsed["resources"]["systemTopic"]
    assert chosen["existing"] is True and chosen["type"] == parsed["resources"]["newSystemTopic"]["type"]
    assert resource("systemTopic", parsed)["name"] == "systemTopicName"
    subscription = resource("blobTriggerSubscription", parsed)
    assert subscription["parent"] == "systemTopic"
    assert subscription["dependsOn"] == ["newSystemTopic"]
    assert condition("blobTriggerSubscription", parsed) is None
    fresh = {"functionAppName": "amlpipe-abc", "existingSystemTopicName": ""}
    assert resolve("createSystemTopic", parsed, fresh) is True
    assert resolve("systemTopicName", parsed, fresh) == "amlpipe-abc-blobevents"
    defender = {"functionAppName": "amlpipe-abc", "existingSystemTopicName": "stamlpipe-defender"}
    assert resolve("createSystemTopic", parsed, defender) is False
    assert resolve("systemTopicName", parsed, defender) == "stamlpipe-defender"


def test_the_event_subscription_feeds_blob_created_in_the_default_container_to_the_blob_trigger() -> None:
    parsed = eventgrid()
    subscription = resource("blobTriggerSubscription", parsed)["properties"]
    assert subscription["filter"]["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert subscription["filter"]["subjectBeginsWith"] == "/blobServices/default/containers/${defaultContainer}/"
    assert resolve(subscription["filter"]["subjectBeginsWith"], parsed) == (
        "/blobServices/default/containers/azureml-blobstore/"
    )
    destination = subscription["destination"]
    assert destination["endpointType"] == "WebHook"
    url = destination["properties"]["endpointUrl"]
    assert url.startswith("https://${functionApp.properties.defaultHostName}/runtime/webhooks/blobs?")
    assert "functionName=Host.Functions.${blobTriggerFunctionName}" in url
    assert url.endswith("&code=${hostKeys.listKeys().systemKeys.blobs_extension}")
    host_keys = parsed["resources"]["hostKeys"]
    assert host_keys["existing"] is True and host_keys["type"] == "Microsoft.Web/sites/host"
    assert resource("hostKeys", parsed) == {
        "type": "Microsoft.Web/sites/host",
        "api_version": host_keys["api_version"],
        "parent": "functionApp",
        "name": "default",
    }


def test_the_webhook_names_the_apps_blob_trigger_function() -> None:
    name = resolve("blobTriggerFunctionName", eventgrid())
    source = (ROOT / "functions" / "schedule_watches.py").read_text(encoding="utf-8")
    trigger = re.search(rf"@bp\.blob_trigger\(((?:[^()]|\([^()]*\))*)\)\s*\ndef {name}\(", source)
    assert trigger, name
    # Flex Consumption loads only Event Grid blob triggers: the app takes its source from the setting.
    assert "source=blob_trigger_source(os.environ)" in trigger.group(1)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda path: path.name)
def test_outputs_carry_no_secret(path: Path) -> None:
    outputs = parse(path)["outputs"]
    assert outputs, path.name
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


def suppressions() -> list[tuple[str, str]]:
    """(check, what follows it) of every ``checkov:skip`` in infra/'s templates."""
    found = []
    for path in TEMPLATES:
        found += re.findall(r"checkov:skip=([A-Z0-9_]+)(.*)", path.read_text(encoding="utf-8"))
    return found


def test_every_checkov_suppression_gives_its_reason() -> None:
    skips = suppressions()
    assert skips, "no suppression found: update this test and docs/deploy.md if that is on purpose"
    for check, rest in skips:
        reason = rest.removeprefix(":").strip()
        assert len(reason) >= 40, f"{check} is suppressed without a real reason"


@pytest.mark.parametrize("check", sorted({check for check, _ in suppressions()}))
def test_every_suppression_is_listed_in_the_deploy_guide(check: str) -> None:
    assert check in (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
