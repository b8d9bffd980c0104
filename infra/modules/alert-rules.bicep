// Azure Monitor alert rules for the failure modes that Keyguard cannot report itself:
//
// * Event Grid dead letters — one metric alert per system topic, deployed next to each topic
//   by deadletter-alert.bicep with this action group.
// * Poison messages — a work item that failed maxDequeueCount times and was moved to
//   "<queue>-poison". The poison_drain function is triggered by every such message (and moves
//   it to the dead-letter table), so its invocation count is the poison queue's inflow; the
//   queue itself stays near empty and Storage has no per-queue length metric.
// * Function failures — any failed invocation (exceptions, timeouts) of any function.
//
// All notify one action group (an e-mail receiver when alertEmail is set; add SMS, webhook or
// ITSM receivers there).

@description('Name prefix of the resources.')
param namePrefix string

@description('Azure region (of the log alert; metric alerts are global).')
param location string

@description('Tags applied to every resource.')
param tags object = {}

@description('E-mail address notified of alerts; empty for an action group without receivers.')
param alertEmail string = ''

@description('Resource id of the Application Insights component.')
param appInsightsId string

@description('Name of the function triggered by poison messages (shared/names.py FN_POISON_DRAIN).')
param poisonFunctionName string

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-ops'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'keyguard'
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [
      {
        name: 'ops'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource poisonAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: '${namePrefix}-poison-messages'
  location: location
  tags: tags
  properties: {
    displayName: '${namePrefix}: work items moved to the poison queue'
    description: 'A work item failed on every dequeue and was dead-lettered; inspect the dead-letter table and replay.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'requests | where operation_Name =~ "${poisonFunctionName}"'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource failureAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-function-failures'
  location: 'global'
  tags: tags
  properties: {
    description: 'Keyguard function invocations failed; Event Grid and the work queue retry, but look at the exceptions.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'FailedRequests'
          metricName: 'requests/failed'
          metricNamespace: 'microsoft.insights/components'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Count'
        }
      ]
    }
    actions: [
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}

output actionGroupId string = actionGroup.id
