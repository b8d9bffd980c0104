// Log Analytics workspace and workspace-based Application Insights for the Function App.
//
// Local (instrumentation-key) authentication is disabled on Application Insights, so only an
// identity holding Monitoring Metrics Publisher (granted in functionapp.bicep) can send
// telemetry: nobody can forge Keyguard's logs or alerts' evidence with a leaked key.

@description('Name prefix of the resources.')
param namePrefix string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object = {}

@description('Days logs are kept.')
@minValue(30)
@maxValue(730)
param retentionInDays int = 90

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-logs'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${namePrefix}-insights'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
  }
}

output workspaceId string = workspace.id
output appInsightsId string = appInsights.id
output appInsightsName string = appInsights.name
output connectionString string = appInsights.properties.ConnectionString
