// amlpipe on Azure: the Functions app on a Flex Consumption plan, its Storage account reached with the
// app's managed identity only (no account keys anywhere), Application Insights on a Log Analytics
// workspace, and Entra ID as the token issuer. The Event Grid subscription that feeds the default
// datastore's blob trigger is infra/eventgrid.bicep, deployed on its own after the code is published:
// this template PUTs the site (its app settings restart it), that one only reads it.
//
// Deploy (docs/deploy.md has every step):
//   az deployment group create -g <group> -f infra/main.bicep -p infra/main.parameters.json -p apiAppId=<guid>
//
// `make test` parses this file (tests/unit/test_infra.py, pycep) and scans infra/ with checkov; each
// suppressed checkov check carries its reason on a `checkov:skip` line inside the resource it concerns.

targetScope = 'resourceGroup'

@description('Region of every resource. Flex Consumption is offered in a subset of regions: `az functionapp list-flexconsumption-locations`.')
param location string = resourceGroup().location

@description('Short lowercase prefix of resource names (letters and digits); a hash of the resource group makes them unique.')
@minLength(3)
@maxLength(11)
param namePrefix string = 'amlpipe'

@description('Entra ID tenant that issues the tokens the API accepts.')
param tenantId string = tenant().tenantId

@description('Application (client) ID of the amlpipe API app registration (docs/deploy.md): the audience of its v2 access tokens.')
@minLength(36)
@maxLength(36)
param apiAppId string

@description('Token issuer the API accepts (AMLPIPE_AUTH_ISSUER). Default: the tenant\'s v2.0 issuer.')
param authIssuer string = '${environment().authentication.loginEndpoint}${tenantId}/v2.0'

@description('Token audience the API accepts (AMLPIPE_AUTH_AUDIENCE). Default: the API app\'s client ID, the `aud` of v2 tokens.')
param authAudience string = apiAppId

@description('Where the issuer\'s signing keys are (AMLPIPE_AUTH_JWKS_URL).')
param authJwksUrl string = '${environment().authentication.loginEndpoint}${tenantId}/discovery/v2.0/keys'

@description('Most instances the app scales out to (Flex Consumption: 1 to 1000).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory of each instance in MB. Steps run in the instance as child processes, so heavy steps want 4096.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Container of the default datastore `workspaceblobstore` (AMLPIPE_DEFAULT_CONTAINER): 3-63 lowercase letters, digits and hyphens.')
@minLength(3)
@maxLength(63)
param defaultContainer string = 'azureml-blobstore'

@description('Redundancy of the Storage account. Standard_ZRS survives a zone outage and costs about a quarter more.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_LRS'

@description('Spread the app\'s instances over availability zones. Flex then keeps at least two always-ready instances per scaling group, billed while idle; use it with storageSku Standard_ZRS.')
param zoneRedundant bool = false

@description('Days Log Analytics keeps logs (31 are included in the ingestion price).')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Tags applied to every resource.')
param tags object = {
  app: 'amlpipe'
}

@description('Whether the app issues and accepts its own tokens (AMLPIPE_LOCAL_TOKENS). disabled: only Entra ID tokens get in. enabled: amlpipe service principals can sign in at POST /api/oauth2/token too, with HS256 tokens whose key is kept in the blob amlpipe-secrets/token-signing-key unless AMLPIPE_TOKEN_SIGNING_KEY is set through extraAppSettings (docs/deploy.md).')
@allowed([
  'disabled'
  'enabled'
])
param localTokens string = 'disabled'

@description('App settings added to the template\'s own, by name; one with the name of a template setting replaces it. Each deployment sets the app settings to exactly the template\'s plus these, so a setting added by hand is removed by the next one: keep it here. Values are strings; a secret goes in Key Vault and in here as a reference (@Microsoft.KeyVault(SecretUri=...)), since parameters stay in the deployment history (docs/deploy.md).')
param extraAppSettings object = {}

// ---------------------------------------------------------------------------------------------------
// Names and fixed values

var suffix = uniqueString(resourceGroup().id, namePrefix)
var storageAccountName = take(toLower(replace('${namePrefix}${suffix}', '-', '')), 24)
var functionAppName = '${namePrefix}-${suffix}'
var planName = '${namePrefix}-plan-${suffix}'
var appInsightsName = '${namePrefix}-appi-${suffix}'
var logAnalyticsName = '${namePrefix}-log-${suffix}'
var deploymentContainer = 'app-package'

// Queue names and timer schedules: the values infra/README.md lists (a unit test keeps them equal).
var runQueue = 'amlpipe-runs'
var stepQueue = 'amlpipe-steps'
var scheduleQueue = 'amlpipe-schedule-fires'
var appQueues = [
  runQueue
  stepQueue
  scheduleQueue
  '${runQueue}-poison'
  '${stepQueue}-poison'
  '${scheduleQueue}-poison'
]

// Per-instance concurrency of the queue functions. An instance takes host.json's queues batchSize (16)
// messages of its queue at once and more when the number in flight falls to newBatchThreshold, so it runs
// up to batchSize + newBatchThreshold of them together. newBatchThreshold defaults to batchSize/2 times
// the processor count outside the Dynamic (Consumption) SKU, and Flex instances' core counts vary: it is
// pinned here. The invocations (advance_run, execute_step) are synchronous, and the Python worker runs
// those on a thread pool of PYTHON_THREADPOOL_THREAD_COUNT threads (default min(32, cores + 4), so about
// 5): it gets one thread per message in flight, or the others would wait, their functionTimeout running.
var queueBatchSize = 16 // host.json extensions.queues.batchSize (a unit test keeps them equal)
var queueNewBatchThreshold = 8
var pythonThreadCount = queueBatchSize + queueNewBatchThreshold // at most 32, the documented maximum

// Built-in roles (well-known IDs), the least the app needs on its own account:
// Blob Data Owner: the host's blob leases and receipts, the datastore and its logs, and
//   generateUserDelegationKey for the SAS the app hands out (artifacts, snapshots);
// Queue Data Contributor: the orchestration's queues and the host's queue triggers;
// Table Data Contributor: runs, registry, schedules and principals.
var storageDataRoles = [
  {
    name: 'Storage Blob Data Owner'
    id: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  }
  {
    name: 'Storage Queue Data Contributor'
    id: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  }
  {
    name: 'Storage Table Data Contributor'
    id: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  }
]
// Monitoring Metrics Publisher: Entra-authenticated telemetry to Application Insights (local auth off).
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'

// The app settings the template sets (infra/README.md lists them); the site's appSettings are these with
// extraAppSettings merged in. Storage endpoints and the telemetry connection string come from the resources.
var baseAppSettings = [
  // Host storage by identity: no AzureWebJobsStorage connection string exists.
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storage.name
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__blobServiceUri'
    value: storage.properties.primaryEndpoints.blob
  }
  {
    name: 'AzureWebJobsStorage__queueServiceUri'
    value: storage.properties.primaryEndpoints.queue
  }
  {
    name: 'AzureWebJobsStorage__tableServiceUri'
    value: storage.properties.primaryEndpoints.table
  }
  // Telemetry with the app's identity (the component refuses its instrumentation key alone).
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsights.properties.ConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'Authorization=AAD'
  }
  // amlpipe's settings (infra/README.md).
  {
    name: 'AMLPIPE_RUN_QUEUE'
    value: runQueue
  }
  {
    name: 'AMLPIPE_STEP_QUEUE'
    value: stepQueue
  }
  {
    name: 'AMLPIPE_SCHEDULE_QUEUE'
    value: scheduleQueue
  }
  {
    name: 'AMLPIPE_SCHEDULE_PLANNER'
    value: '0 * * * * *'
  }
  {
    name: 'AMLPIPE_WATCHDOG_SCHEDULE'
    value: '*/30 * * * * *'
  }
  {
    name: 'AMLPIPE_DATASTORE_POLLER'
    value: '0 * * * * *'
  }
  {
    name: 'AMLPIPE_DEFAULT_CONTAINER'
    value: defaultContainer
  }
  // Flex Consumption loads only Event Grid blob triggers; the app declares its trigger's source
  // from this setting when it is indexed (functions/schedule_watches.py).
  {
    name: 'AMLPIPE_BLOB_TRIGGER_SOURCE'
    value: 'EventGrid'
  }
  // Entra ID tokens: the caller's role is the highest amlpipe app role in its `roles` claim.
  {
    name: 'AMLPIPE_AUTH_ISSUER'
    value: authIssuer
  }
  {
    name: 'AMLPIPE_AUTH_AUDIENCE'
    value: authAudience
  }
  {
    name: 'AMLPIPE_AUTH_JWKS_URL'
    value: authJwksUrl
  }
  {
    name: 'AMLPIPE_TENANT_ID'
    value: tenantId
  }
  // Only Entra ID tokens unless localTokens is enabled: the app's own token endpoint then issues none
  // and its HS256 tokens are refused.
  {
    name: 'AMLPIPE_LOCAL_TOKENS'
    value: localTokens
  }
  // One worker thread per queue message an instance may have in flight (queueBatchSize above).
  {
    name: 'PYTHON_THREADPOOL_THREAD_COUNT'
    value: string(pythonThreadCount)
  }
  {
    name: 'AzureFunctionsJobHost__extensions__queues__newBatchThreshold'
    value: string(queueNewBatchThreshold)
  }
]

// extraAppSettings as name/value pairs.
var extraAppSettingsList = [for setting in items(extraAppSettings): {
  name: setting.key
  value: string(setting.value)
}]

// ---------------------------------------------------------------------------------------------------
// Storage: queues, tables, blobs and the deployment package, reachable only with Entra ID

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration reaches Storage from shared outbound addresses, so the firewall cannot default to Deny; shared keys are off, every request carries an Entra ID token scoped by RBAC
  // checkov:skip=CKV_AZURE_59: the same: the app has no private network path, so public network access stays on (identity-only, TLS 1.2, HTTPS only)
  // checkov:skip=CKV_AZURE_43: the name is computed (prefix + uniqueString, lowercased, hyphens removed, at most 24 characters), which checkov cannot evaluate; Azure validates it at deployment
  // checkov:skip=CKV_AZURE_206: replication is the storageSku parameter: LRS by default for cost, ZRS/GRS/GZRS allowed
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: storageSku
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    isHnsEnabled: false
    isLocalUserEnabled: false
    isSftpEnabled: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainer
  properties: {
    publicAccess: 'None'
  }
}

resource datastoreContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: defaultContainer
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// The app creates its queues on first use too; creating them here makes a fresh app's triggers
// listen to queues that exist from the start.
resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queue in appQueues: {
    parent: queueService
    name: queue
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// ---------------------------------------------------------------------------------------------------
// Monitoring: Application Insights on a Log Analytics workspace, ingestion with Entra ID only

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
    features: {
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    DisableLocalAuth: true
    IngestionMode: 'LogAnalytics'
  }
}

// ---------------------------------------------------------------------------------------------------
// The Function App: Flex Consumption, Linux, Python 3.11, system-assigned identity

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zoneRedundant is a parameter, off by default: a zone-redundant Flex plan keeps at least two always-ready instances per scaling group, billed while idle; pair it with storageSku Standard_ZRS
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17: callers authenticate with bearer tokens (Entra ID app roles, checked by the app itself), not client certificates
  // checkov:skip=CKV_AZURE_222: a public API: clients call it over the internet with bearer tokens; private endpoints need a VNet this template does not create
  // checkov:skip=CKV_AZURE_212: siteConfig.numberOfWorkers does not apply to Flex Consumption, which scales from zero to maximumInstanceCount by itself and replaces failed instances
  // checkov:skip=CKV_AZURE_213: no platform health check: Flex Consumption scales to zero and replaces instances itself; GET /api/health is there for external probes
  name: functionAppName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  // The deployment container is named in functionAppConfig by URL, which implies no dependency.
  dependsOn: [
    packageContainer
  ]
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      // The template's settings with extraAppSettings merged in by name (an extra one replaces a
      // template setting of the same name).
      appSettings: concat(filter(baseAppSettings, setting => !contains(extraAppSettings, setting.name)), extraAppSettingsList)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
    }
  }
}

// Publishing authenticates with Entra ID (az login), never with basic-auth publishing credentials.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

// ---------------------------------------------------------------------------------------------------
// Role assignments: the app's identity on its Storage account and on Application Insights

resource storageRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in storageDataRoles: {
    name: guid(storage.id, functionApp.id, role.id)
    scope: storage
    properties: {
      description: '${role.name} for the amlpipe app ${functionAppName}'
      principalId: functionApp.identity.principalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.id)
    }
  }
]

resource telemetryRoleAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, functionApp.id, monitoringMetricsPublisherRoleId)
  scope: appInsights
  properties: {
    description: 'Monitoring Metrics Publisher for the amlpipe app ${functionAppName}'
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
  }
}

// ---------------------------------------------------------------------------------------------------
// Outputs: names and URLs only, never a key or a connection string. functionAppName,
// storageAccountName, defaultContainer and location are eventgrid.bicep's parameters.

output functionAppName string = functionApp.name
output functionAppUrl string = 'https://${functionApp.properties.defaultHostName}'
output apiBaseUrl string = 'https://${functionApp.properties.defaultHostName}/api'
output functionAppPrincipalId string = functionApp.identity.principalId
output storageAccountName string = storage.name
output defaultContainer string = datastoreContainer.name
output applicationInsightsName string = appInsights.name
output location string = location
output localTokens string = localTokens
