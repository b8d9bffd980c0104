// Alert when Event Grid dead-letters an event of one system topic: an event Keyguard never
// received (app stopped, 400/403/413 answers, retries exhausted). Deployed next to the topic,
// so the rule and the resource it watches share a subscription; the action group may live in
// Keyguard's resource group.

@description('Name of the Event Grid system topic.')
param topicName string

@description('Resource id of the action group to notify.')
param actionGroupId string

@description('Tags applied to every resource.')
param tags object = {}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: topicName
}

resource deadLetterAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${topicName}-deadletters'
  location: 'global'
  tags: tags
  properties: {
    description: 'Event Grid dead-lettered an event for Keyguard (${topicName}); replay it from the dead-letter container.'
    severity: 1
    enabled: true
    scopes: [
      topic.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'DeadLettered'
          metricName: 'DeadLetteredCount'
          metricNamespace: 'Microsoft.EventGrid/systemTopics'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Total'
        }
      ]
    }
    actions: [
      {
        actionGroupId: actionGroupId
      }
    ]
  }
}
