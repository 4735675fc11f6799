// Event Grid for amlpipe's blob trigger: BlobCreated events of the default datastore's container, pushed
// to the app's `watch_default_datastore` (functions/schedule_watches.py) through the host's blob webhook.
//
// Deployed on its own, after main.bicep and after the code is published and the host has started once
// (docs/deploy.md, step 4): the webhook's key, systemKeys.blobs_extension, exists only from then on, and
// Event Grid checks the webhook with a handshake when the subscription is created. The function app and
// the Storage account are only referenced here (`existing`): this deployment never PUTs the site, so it
// neither restarts the app nor touches its app settings.
//
//   az deployment group create -g <group> -f infra/eventgrid.bicep \
//     -p functionAppName=<main's functionAppName output> storageAccountName=<its storageAccountName output>
//
// A Storage account has at most one Event Grid system topic. If one exists already (Defender for Storage
// creates one, for instance), pass its name as existingSystemTopicName: the subscription is made under it.
//
// `make test` parses this file (tests/unit/test_infra.py) and scans it with checkov, like main.bicep.

targetScope = 'resourceGroup'

@description('The amlpipe function app (main.bicep\'s functionAppName output).')
param functionAppName string

@description('Its Storage account, where the default datastore\'s container is (main.bicep\'s storageAccountName output).')
param storageAccountName string

@description('Container of the default datastore `workspaceblobstore` (main.bicep\'s defaultContainer output, AMLPIPE_DEFAULT_CONTAINER).')
@minLength(3)
@maxLength(63)
param defaultContainer string = 'azureml-blobstore'


@description('Name of the Event Grid system topic the Storage account already has, in this resource group (an account can have only one; `az eventgrid system-topic list -g <group> -o table`). Empty: the template creates the topic.')
param existingSystemTopicName string = ''

@description('Tags of a new system topic.')
param tags object = {
  app: 'amlpipe'
}

// The app's blob trigger on the default container; the webhook names it.
var blobTriggerFunctionName = 'watch_default_datastore'
var createSystemTopic = empty(existingSystemTopicName)
var systemTopicName = createSystemTopic ? '${functionAppName}-blobevents' : existingSystemTopicName

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

// The host's keys: systemKeys.blobs_extension exists once the published code's blob trigger, whose source
// is EventGrid on Azure (AMLPIPE_BLOB_TRIGGER_SOURCE), has been loaded by the host.
resource hostKeys 'Microsoft.Web/sites/host@2024-04-01' existing = {
  parent: functionApp
  name: 'default'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource newSystemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = if (createSystemTopic) {
  name: systemTopicName
  location: storage.location // a system topic lives in its source's region
  tags: tags
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

// The topic the subscription belongs to: the one just created, or the account's existing one.
resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource blobTriggerSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: systemTopic
  name: '${functionAppName}-blob-trigger'
  // Dropped by ARM when no topic is created.
  dependsOn: [
    newSystemTopic
  ]
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        // The key is read at deployment with listKeys and is written to no output.
        endpointUrl: 'https://${functionApp.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.${blobTriggerFunctionName}&code=${hostKeys.listKeys().systemKeys.blobs_extension}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${defaultContainer}/'
    }
    // No dead-letter destination: an event that is never delivered is still caught by the datastore
    // poller, which reconciles the default container at each schedule's polling_interval.
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

// Names only: the webhook URL holds the key and is not an output.
output systemTopicName string = systemTopicName
output createdSystemTopic bool = createSystemTopic
output eventSubscriptionName string = blobTriggerSubscription.name
