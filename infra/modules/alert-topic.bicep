// The Event Grid custom topic Keyguard publishes its alerts to (CloudEvents 1.0, types
// "Keyguard.*"), the EventGrid Data Sender role that lets Keyguard publish with its identity,
// and an optional example subscription that forwards alerts to a webhook (a Logic App HTTP
// trigger, an ITSM connector, ...).
//
// Local (access key / SAS) authentication is disabled: only Entra ID principals holding
// EventGrid Data Sender on this topic can publish, so a leaked key cannot inject fake alerts.

@description('Name of the topic.')
param name string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object = {}

@description('Principal id of Keyguard\'s managed identity (publisher).')
param publisherPrincipalId string

@description('Prefix of the CloudEvents types Keyguard publishes (shared/names.py ALERT_TYPE_PREFIX).')
param alertTypePrefix string

@description('Optional webhook (e.g. Logic App HTTP trigger URL) that receives the alerts; empty for none.')
@secure()
param webhookUrl string = ''

// EventGrid Data Sender: events/send/action on topics only.
var eventGridDataSender = 'd5a91429-5739-47e2-a06b-3470a27159e7'

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  // checkov:skip=CKV_AZURE_193: The Function App publishes over the public endpoint (Flex Consumption without VNet integration by default); local auth is disabled, so publishing needs an Entra ID token with EventGrid Data Sender on this topic. Disable public access together with private endpoints where the network allows it.
  name: name
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

// Scoped to this one topic, not the resource group: Keyguard may publish here and nowhere else.
resource senderRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(topic.id, publisherPrincipalId, eventGridDataSender)
  scope: topic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSender)
    principalId: publisherPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Example consumer: every Keyguard.* alert to one webhook, CloudEvents in and out. The
// CloudEvents abuse-protection handshake (HTTP OPTIONS) must be answered by the receiver; a
// Logic App HTTP trigger does so.
resource webhookSubscription 'Microsoft.EventGrid/topics/eventSubscriptions@2022-06-15' = if (!empty(webhookUrl)) {
  parent: topic
  name: 'alerts-to-webhook'
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: webhookUrl
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    filter: {
      advancedFilters: [
        {
          operatorType: 'StringBeginsWith'
          key: 'type'
          values: [
            alertTypePrefix
          ]
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

output id string = topic.id
output endpoint string = topic.properties.endpoint
