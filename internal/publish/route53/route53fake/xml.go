package route53fake

import "encoding/xml"

// ns is the Route 53 API's XML namespace; every request and response
// document is in it.
const ns = "https://route53.amazonaws.com/doc/2013-04-01/"

// RecordSet is a resource record set as the API's XML carries it.
type RecordSet struct {
	Name             string           `xml:"Name"`
	Type             string           `xml:"Type"`
	SetIdentifier    string           `xml:"SetIdentifier,omitempty"`
	Weight           *int64           `xml:"Weight,omitempty"`
	Region           string           `xml:"Region,omitempty"`
	GeoLocation      *GeoLocation     `xml:"GeoLocation,omitempty"`
	Failover         string           `xml:"Failover,omitempty"`
	MultiValueAnswer *bool            `xml:"MultiValueAnswer,omitempty"`
	TTL              *int64           `xml:"TTL,omitempty"`
	ResourceRecords  []ResourceRecord `xml:"ResourceRecords>ResourceRecord,omitempty"`
	AliasTarget      *AliasTarget     `xml:"AliasTarget,omitempty"`
	HealthCheckID    string           `xml:"HealthCheckId,omitempty"`
	Unknown          []unknownElem    `xml:",any"`
}

// ResourceRecord is one value of a record set.
type ResourceRecord struct {
	Value string `xml:"Value"`
}

// GeoLocation of a geolocation record set; CountryCode "*" is the default.
type GeoLocation struct {
	ContinentCode   string `xml:"ContinentCode,omitempty"`
	CountryCode     string `xml:"CountryCode,omitempty"`
	SubdivisionCode string `xml:"SubdivisionCode,omitempty"`
}

// AliasTarget of an alias record set.
type AliasTarget struct {
	HostedZoneID         string `xml:"HostedZoneId"`
	DNSName              string `xml:"DNSName"`
	EvaluateTargetHealth bool   `xml:"EvaluateTargetHealth"`
}

// unknownElem catches elements the fake does not model, so that a request
// using them is reported instead of silently misread.
type unknownElem struct {
	XMLName xml.Name
}

type changeBatchRequest struct {
	XMLName     xml.Name `xml:"https://route53.amazonaws.com/doc/2013-04-01/ ChangeResourceRecordSetsRequest"`
	ChangeBatch struct {
		Comment string        `xml:"Comment"`
		Changes []change      `xml:"Changes>Change"`
		Unknown []unknownElem `xml:",any"`
	} `xml:"ChangeBatch"`
	Unknown []unknownElem `xml:",any"`
}

type change struct {
	Action    string        `xml:"Action"`
	RecordSet RecordSet     `xml:"ResourceRecordSet"`
	Unknown   []unknownElem `xml:",any"`
}

type changeInfo struct {
	ID          string `xml:"Id"`
	Status      string `xml:"Status"`
	SubmittedAt string `xml:"SubmittedAt"`
	Comment     string `xml:"Comment,omitempty"`
}

type changeResponse struct {
	XMLName    xml.Name   `xml:"ChangeResourceRecordSetsResponse"`
	Xmlns      string     `xml:"xmlns,attr"`
	ChangeInfo changeInfo `xml:"ChangeInfo"`
}

type getChangeResponse struct {
	XMLName    xml.Name   `xml:"GetChangeResponse"`
	Xmlns      string     `xml:"xmlns,attr"`
	ChangeInfo changeInfo `xml:"ChangeInfo"`
}

type listRecordSetsResponse struct {
	XMLName              xml.Name    `xml:"ListResourceRecordSetsResponse"`
	Xmlns                string      `xml:"xmlns,attr"`
	ResourceRecordSets   []RecordSet `xml:"ResourceRecordSets>ResourceRecordSet"`
	IsTruncated          bool        `xml:"IsTruncated"`
	NextRecordName       string      `xml:"NextRecordName,omitempty"`
	NextRecordType       string      `xml:"NextRecordType,omitempty"`
	NextRecordIdentifier string      `xml:"NextRecordIdentifier,omitempty"`
	MaxItems             int         `xml:"MaxItems"`
}

type hostedZoneXML struct {
	ID                     string `xml:"Id"`
	Name                   string `xml:"Name"`
	CallerReference        string `xml:"CallerReference"`
	ResourceRecordSetCount int    `xml:"ResourceRecordSetCount"`
}

type getHostedZoneResponse struct {
	XMLName       xml.Name      `xml:"GetHostedZoneResponse"`
	Xmlns         string        `xml:"xmlns,attr"`
	HostedZone    hostedZoneXML `xml:"HostedZone"`
	DelegationSet struct {
		NameServers []string `xml:"NameServers>NameServer"`
	} `xml:"DelegationSet"`
}

// HealthCheckConfig is the part of a health check the publisher sets.
type HealthCheckConfig struct {
	IPAddress                string        `xml:"IPAddress,omitempty"`
	Port                     *int32        `xml:"Port,omitempty"`
	Type                     string        `xml:"Type"`
	ResourcePath             string        `xml:"ResourcePath,omitempty"`
	FullyQualifiedDomainName string        `xml:"FullyQualifiedDomainName,omitempty"`
	SearchString             string        `xml:"SearchString,omitempty"`
	RequestInterval          *int32        `xml:"RequestInterval,omitempty"`
	FailureThreshold         *int32        `xml:"FailureThreshold,omitempty"`
	MeasureLatency           *bool         `xml:"MeasureLatency,omitempty"`
	Inverted                 *bool         `xml:"Inverted,omitempty"`
	Disabled                 *bool         `xml:"Disabled,omitempty"`
	EnableSNI                *bool         `xml:"EnableSNI,omitempty"`
	Regions                  []string      `xml:"Regions>Region,omitempty"`
	Unknown                  []unknownElem `xml:",any"`
}

// HealthCheck is a stored health check with its tags.
type HealthCheck struct {
	ID              string
	CallerReference string
	Config          HealthCheckConfig
	Version         int64
	Tags            map[string]string
}

type healthCheckXML struct {
	ID                 string            `xml:"Id"`
	CallerReference    string            `xml:"CallerReference"`
	HealthCheckConfig  HealthCheckConfig `xml:"HealthCheckConfig"`
	HealthCheckVersion int64             `xml:"HealthCheckVersion"`
}

type createHealthCheckRequest struct {
	XMLName           xml.Name          `xml:"https://route53.amazonaws.com/doc/2013-04-01/ CreateHealthCheckRequest"`
	CallerReference   string            `xml:"CallerReference"`
	HealthCheckConfig HealthCheckConfig `xml:"HealthCheckConfig"`
	Unknown           []unknownElem     `xml:",any"`
}

type updateHealthCheckRequest struct {
	XMLName                  xml.Name      `xml:"https://route53.amazonaws.com/doc/2013-04-01/ UpdateHealthCheckRequest"`
	HealthCheckVersion       *int64        `xml:"HealthCheckVersion"`
	IPAddress                string        `xml:"IPAddress"`
	Port                     *int32        `xml:"Port"`
	ResourcePath             string        `xml:"ResourcePath"`
	FullyQualifiedDomainName string        `xml:"FullyQualifiedDomainName"`
	FailureThreshold         *int32        `xml:"FailureThreshold"`
	ResetElements            []string      `xml:"ResetElements>ResettableElementName"`
	Unknown                  []unknownElem `xml:",any"`
}

type healthCheckResponse struct {
	XMLName     xml.Name
	Xmlns       string         `xml:"xmlns,attr"`
	HealthCheck healthCheckXML `xml:"HealthCheck"`
}

type listHealthChecksResponse struct {
	XMLName      xml.Name         `xml:"ListHealthChecksResponse"`
	Xmlns        string           `xml:"xmlns,attr"`
	HealthChecks []healthCheckXML `xml:"HealthChecks>HealthCheck"`
	Marker       string           `xml:"Marker"`
	IsTruncated  bool             `xml:"IsTruncated"`
	NextMarker   string           `xml:"NextMarker,omitempty"`
	MaxItems     int              `xml:"MaxItems"`
}

type tagXML struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

type changeTagsRequest struct {
	XMLName       xml.Name      `xml:"https://route53.amazonaws.com/doc/2013-04-01/ ChangeTagsForResourceRequest"`
	AddTags       []tagXML      `xml:"AddTags>Tag"`
	RemoveTagKeys []string      `xml:"RemoveTagKeys>Key"`
	Unknown       []unknownElem `xml:",any"`
}

type listTagsRequest struct {
	XMLName     xml.Name      `xml:"https://route53.amazonaws.com/doc/2013-04-01/ ListTagsForResourcesRequest"`
	ResourceIDs []string      `xml:"ResourceIds>ResourceId"`
	Unknown     []unknownElem `xml:",any"`
}

type resourceTagSet struct {
	ResourceType string   `xml:"ResourceType"`
	ResourceID   string   `xml:"ResourceId"`
	Tags         []tagXML `xml:"Tags>Tag"`
}

type listTagsResponse struct {
	XMLName         xml.Name         `xml:"ListTagsForResourcesResponse"`
	Xmlns           string           `xml:"xmlns,attr"`
	ResourceTagSets []resourceTagSet `xml:"ResourceTagSets>ResourceTagSet"`
}

type listTagResponse struct {
	XMLName        xml.Name       `xml:"ListTagsForResourceResponse"`
	Xmlns          string         `xml:"xmlns,attr"`
	ResourceTagSet resourceTagSet `xml:"ResourceTagSet"`
}

type emptyResponse struct {
	XMLName xml.Name
	Xmlns   string `xml:"xmlns,attr"`
}

type errorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

type invalidChangeBatch struct {
	XMLName   xml.Name `xml:"InvalidChangeBatch"`
	Xmlns     string   `xml:"xmlns,attr"`
	Messages  []string `xml:"Messages>Message"`
	RequestID string   `xml:"RequestId"`
}
