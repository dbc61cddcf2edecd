<?xml version="1.0" encoding="UTF-8"?>
<StyledLayerDescriptor xmlns="http://www.opengis.net/sld" xmlns:se="http://www.opengis.net/se" xsi:schemaLocation="http://www.opengis.net/sld http://schemas.opengis.net/sld/1.1.0/StyledLayerDescriptor.xsd" xmlns:ogc="http://www.opengis.net/ogc" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xlink="http://www.w3.org/1999/xlink" version="1.1.0">
  <NamedLayer>
    <se:Name>zoning</se:Name>
    <UserStyle>
      <se:Name>zoning</se:Name>
      <se:FeatureTypeStyle>
        <se:Rule>
          <se:Name>Đất ở (ODT, ONT)</se:Name>
          <se:Description>
            <se:Title>Đất ở (ODT, ONT)</se:Title>
          </se:Description>
          <ogc:Filter xmlns:ogc="http://www.opengis.net/ogc">
            <ogc:PropertyIsEqualTo>
              <ogc:PropertyName>CASE WHEN "planned_land_use" IN ('ODT', 'ONT') THEN 'residential' WHEN "planned_land_use" IN ('LUC', 'LUK', 'HNK', 'CLN', 'RSX', 'RPH', 'RDD', 'NTS', 'CNT', 'LMU', 'NKH') THEN 'agricultural' WHEN "planned_land_use" IN ('TSC') THEN 'state_offices' WHEN "planned_land_use" IN ('CQP', 'CAN') THEN 'defence_security' WHEN "planned_land_use" IN ('DVH', 'DXH', 'DYT', 'DGD', 'DTT', 'DKH', 'DNG', 'DSK') THEN 'public_service' WHEN "planned_land_use" IN ('SKK', 'SKN', 'SKT', 'TMD', 'SKC', 'SKS') THEN 'business' WHEN "planned_land_use" IN ('DGT', 'DTL', 'DNL', 'DBV', 'DCH', 'DRA', 'DKV') THEN 'public_use' WHEN "planned_land_use" IN ('TON', 'TIN', 'NTD') THEN 'religious_cemetery' WHEN "planned_land_use" IN ('SON', 'MNC') THEN 'water' WHEN "planned_land_use" IN ('PNK') THEN 'other' WHEN "planned_land_use" IN ('BCS', 'DCS', 'NCS') THEN 'unused' ELSE 'other' END</ogc:PropertyName>
              <ogc:Literal>residential</ogc:Literal>
            </ogc:PropertyIsEqualTo>
          </ogc:Filter>
          <se:PolygonSymbolizer>
            <se:Fill>
              <se:SvgParameter name="fill">#f4a6a6</se:SvgParameter>
            </se:Fill>
            <se:Stroke>
              <se:SvgParameter name="stroke">#a36f6f</se:SvgParameter>
              <se:SvgParameter name="stroke-width">1</se:SvgParameter>
              <se:SvgParameter name="stroke-linejoin">bevel</se:SvgParameter>
            </se:Stroke>
          </se:PolygonSymbolizer>
        </se:Rule>
        <se:Rule>
          <se:Name>Đất nông nghiệp, lâm nghiệp, nuôi trồng thủy sản</se:Name>
          <se:Description>
            <se:Title>Đất nông nghiệp, lâm nghiệp, nuôi trồng thủy sản</se:Title>
          </se:Description>
          <ogc:Filter xmlns:ogc="http://www.opengis.net/ogc">
            <ogc:PropertyIsEqualTo>
              <ogc:PropertyName>CASE WHEN "planned_land_use" IN ('ODT', 'ONT') THEN 'residential' WHEN "planned_land_use" IN ('LUC', 'LUK', 'HNK', 'CLN', 'RSX', 'RPH', 'RDD', 'NTS', 'CNT', 'LMU', 'NKH') THEN 'agricultural' WHEN "planned_land_use" IN ('TSC') THEN 'state_offices' WHEN "planned_land_use" IN ('CQP', 'CAN') THEN 'defence_security' WHEN "planned_land_use" IN ('DVH', 'DXH', 'DYT', 'DGD', 'DTT', 'DKH', 'DNG', 'DSK') THEN 'public_service' WHEN "planned_land_use" IN ('SKK', 'SKN', 'SKT', 'TMD', 'SKC', 'SKS') THEN 'business' WHEN "planned_land_use" IN ('DGT', 'DTL', 'DNL', 'DBV', 'DCH', 'DRA', 'DKV') THEN 'public_use' WHEN "planned_land_use" IN ('TON', 'TIN', 'NTD') THEN 'religious_cemetery' WHEN "planned_land_use" IN ('SON', 'MNC') THEN 'water' WHEN "planned_land_use" IN ('PNK') THEN 'other' WHEN "planned_land_use" IN ('BCS', 'DCS', 'NCS') THEN 'unused' ELSE 'other' END</ogc:PropertyName>
              <ogc:Literal>agricultural</ogc:Literal>
            </ogc:PropertyIsEqualTo>
          </ogc:Filter>
          <se:PolygonSymbolizer>
            <se:Fill>
              <se:SvgParameter name="fill">#c5dc6a</se:SvgParameter>
            </se:Fill>
            <se:Stroke>
              <se:SvgParameter name="stroke">#839347</se:SvgParameter>
              <se:SvgParameter name="stroke-width">1</se:SvgParameter>
              <se:SvgParameter name="stroke-linejoin">bevel</se:SvgParameter>
            </se:Stroke>
          </se:PolygonSymbolizer>
        </se:Rule>
        <se:Rule>
          <se:Name>Đất trụ sở cơ quan (TSC)</se:Name>
          <se:Description>
            <se:Title>Đất trụ sở cơ quan (TSC)</se:Title>
          </se:Description>
          <ogc:Filter xmlns:ogc="http://www.opengis.net/ogc">
            <ogc:PropertyIsEqualTo>
              <ogc:PropertyName>CASE WHEN "planned_land_use" IN ('ODT', 'ONT') THEN 'residential' WHEN "planned_land_use" IN ('LUC', 'LUK', 'HNK', 'CLN', 'RSX', 'RPH', 'RDD', 'NTS', 'CNT', 'LMU', 'NKH') THEN 'agricultural' WHEN "planned_land_use" IN ('TSC') THEN 'state_offices' WHEN "planned_land_use" IN ('CQP', 'CAN') THEN 'defence_security' WHEN "planned_land_use" IN ('DVH', 'DXH', 'DYT', 'DGD', 'DTT', 'DKH', 'DNG', 'DSK') THEN 'public_service' WHEN "planned_land_use" IN ('SKK', 'SKN', 'SKT', 'TMD', 'SKC', 'SKS') THEN 'business' WHEN "planned_land_use" IN ('DGT', 'DTL', 'DNL', 'DBV', 'DCH', 'DRA', 'DKV') THEN 'public_use' WHEN "planned_land_use" IN ('TON', 'TIN', 'NTD') THEN 'religious_cemetery' WHEN "planned_land_use" IN ('SON', 'MNC') THEN 'water' WHEN "planned_land_use" IN ('PNK') THEN 'other' WHEN "planned_land_use" IN ('BCS', 'DCS', 'NCS') THEN 'unused' ELSE 'other' END</ogc:PropertyName>
              <ogc:Literal>state_offices</ogc:Literal>
            </ogc:PropertyIsEqualTo>
          </ogc:Filter>
          <se:PolygonSymbolizer>
            <se:Fill>
              <se:SvgParameter name="fill">#e06666</se:SvgParameter>
            </se:Fill>
            <se:Stroke>
              <se:SvgParameter name="stroke">#954444</se:SvgParameter>
              <se:SvgParameter name="stroke-width">1</se:SvgParameter>
              <se:SvgParameter name="stroke-linejoin">bevel</se:SvgParameter>
            </se:Stroke>
          </se:PolygonSymbolizer>
        </se:Rule>
        <se:Rule>
          <se:Name>Đất quốc phòng, an ninh (CQP, CAN)</se:Name>
          <se:Description>
            <se:Title>Đất quốc phòng, an ninh (CQP, CAN)</se:Title>
          </se:Description>
          <ogc:Filter xmlns:ogc="http://www.opengis.net/ogc">
            <ogc:PropertyIsEqualTo>
              <ogc:PropertyName>CASE WHEN "planned_land_use" IN ('ODT', 'ONT') THEN 'residential' WHEN "planned_land_use" IN ('LUC', 'LUK', 'HNK', 'CLN', 'RSX', 'RPH', 'RDD', 'NTS', 'CNT', 'LMU', 'NKH') THEN 'agricultural' WHEN "planned_land_use" IN ('TSC') THEN 'state_offices' WHEN "planned_land_use" IN ('CQP', 'CAN') THEN 'defence_security' WHEN "planned_land_use" IN ('DVH', 'DXH', 'DYT', 'DGD', 'DTT', 'DKH', 'DNG', 'DSK') THEN 'public_service' WHEN "planned_land_use" IN ('SKK', 'SKN', 'SKT', 'TMD', 'SKC', 'SKS') THEN 'business' WHEN "planned_land_use" IN ('DGT', 'DTL', 'DNL', 'DBV', 'DCH', 'DRA', 'DKV') THEN 'public_use' WHEN "planned_land_use" IN ('TON', 'TIN', 'NTD') THEN 'religious_cemetery' WHEN "planned_land_use" IN ('SON', 'MNC') THEN 'water' WHEN "planned_land_use" IN ('PNK') THEN 'other' WHEN "planned_land_use" IN ('BCS', 'DCS', 'NCS') THEN 'unused' ELSE 'other' END</ogc:PropertyName>
              <ogc:Literal>defence_security</ogc:Literal>
            </ogc:PropertyIsEqualTo>
          </ogc:Filter>
          <se:PolygonSymbolizer>
            <se:Fill>
              <se:SvgParameter name="fill">#8e7cc3</se:SvgParameter>
            </se:Fill>
            <se:Stroke>
              <se:SvgParameter name="stroke">#5f5382</se:SvgParameter>
              <se:SvgParameter name="stroke-width">1</se:SvgParameter>
              <se:SvgParameter name="stroke-linejoin">bevel</se:SvgParameter>
            </se:Stroke>
          </se:PolygonSymbolizer>
        </se:Rule>
        <se:Rule>
          <se:Name>Đất công trình sự nghiệp: văn hóa, y tế, giáo dục, thể thao (D..)</se:Name>
          <se:Description>
            <se:Title>Đất công trình sự nghiệp: văn hóa, y tế, giáo dục, thể thao (D..)</se:Title>
          </se:Description>
          <ogc:Filter xmlns:ogc="http://www.opengis.net/ogc">
            <ogc:PropertyIsEqualTo>
              <ogc:PropertyName>CASE WHEN "planned_land_use" IN ('ODT', 'ONT') THEN 'residential' WHEN "planned_land_use" IN ('LUC', 'LUK', 'HNK', 'CLN', 'RSX', 'RPH', 'RDD', 'NTS', 'CNT', 'LMU', 'NKH') THEN 'agricultural' WHEN "planned_land_use" IN ('TSC') THEN 'state_offices' WHEN "planned_land_use" IN ('CQP', 'CAN') THEN 'defence_security' WHEN "planned_land_use" IN ('DVH', 'DXH', 'DYT', 'DGD', 'DTT', 'DKH', 'DNG', 'DSK') THEN 'public_service' WHEN "planned_land_use" IN ('SKK', 'SKN', 'SKT', 'TMD', 'SKC', 'SKS') THEN 'business' WHEN "planned_land_use" IN ('DGT', 'DTL', 'DNL', 'DBV', 'DCH', 'DRA', 'DKV') THEN 'public_use' WHEN "planned_land_use" IN ('TON', 'TIN', 'NTD') THEN 'religious_cemetery' WHEN "planned_land_use" IN ('SON', 'MNC') THEN 'water' WHEN "planned_land_use" IN ('PNK') THEN 'other' WHEN "planned_land_use" IN ('BCS', 'DCS', 'NCS') THEN 'unused' ELSE 'other' END</ogc:PropertyName>
              <ogc:Literal>public_service</ogc:Literal>
            </ogc:PropertyIsEqualTo>
          </ogc:Filter>
          <se:PolygonSymbolizer>
            <se:Fill>
              <se:SvgParameter name="fill">#f6b26b</se:SvgParameter>
            </se:Fill>
            <se:Stroke>
              <se:SvgParameter name="stroke">#a47747</se:SvgParameter>
              <se:SvgParameter name="stroke-width">1</se:SvgParameter>
              <se:SvgParameter name="stroke-linejoin">bevel</se:SvgParameter>
            </se:Stroke>
          </se:PolygonSymbolizer>
        </se:Rule>
        <se:Rule>
          <se:Name>Đất sản xuất, kinh doanh, thương mại, dịch vụ (SK., TMD)</se:Name>
          <se:Description>
            <se:Title>Đất sản xuất, kinh doanh, thương mại, dịch vụ (SK., TMD)</se:Title>
          </se:Description>
          <ogc:Filter xmlns:ogc="http://www.opengis.net/ogc">
            <ogc:PropertyIsEqualTo>
              <ogc:PropertyName>CASE WHEN "planned_land_use" IN ('ODT', 'ONT') THEN 'residential' WHEN "planned_land_use" IN ('LUC', 'LUK', 'HNK', 'CLN', 'RSX', 'RPH', 'RDD', 'NTS', 'CNT', 'LMU', 'NKH') THEN 'agricultural' WHEN "planned_land_use" IN ('TSC') THEN 'state_offices' WHEN "planned_land_use" IN ('CQP', 'CAN') THEN 'defence_security' WHEN "planned_land_use" IN ('DVH', 'DXH', 'DYT', 'DGD', 'DTT', 'DKH', 'DNG', 'DSK') THEN 'public_service' WHEN "planned_land_use" IN ('SKK', 'SKN', 'SKT', 'TMD', 'SKC', 'SKS') THEN 'business' WHEN "planned_land_use" IN ('DGT', 'DTL', 'DNL', 'DBV', 'DCH', 'DRA', 'DKV') THEN 'public_use' WHEN "planned_land_use" IN ('TON', 'TIN', 'NTD') THEN 'religious_cemetery' WHEN "planned_land_use" IN ('SON', 'MNC') THEN 'water' WHEN "planned_land_use" IN ('PNK') THEN 'other' WHEN "planned_land_use" IN ('BCS', 'DCS', 'NCS') THEN 'unused' ELSE 'other' END</ogc:PropertyName>
              <ogc:Literal>business</ogc:Literal>
            </ogc:PropertyIsEqualTo>
          </ogc:Filter>
          <se:PolygonSymbolizer>
            <se:Fill>
              <se:SvgParameter name="fill">#c27ba0</se:SvgParameter>
            </se:Fill>
            <se:Stroke>
              <se:SvgParameter name="stroke">#81526b</se:SvgParameter>
              <se:SvgParameter name="stroke-width">1</se:SvgParameter>
              <se:SvgParameter name="stroke-linejoin">bevel</se:SvgParameter>
            </se:Stroke>
          </se:PolygonSymbolizer>
        </se:Rule>
        <se:Rule>
          <se:Name>Đất công cộng: giao thông, thủy lợi, năng lượng, chợ, công viên</se:Name>
          <se:Description>
            <se:Title>Đất công cộng: giao thông, thủy lợi, năng lượng, chợ, công viên</se:Title>
          </se:Description>
          <ogc:Filter xmlns:ogc="http://www.opengis.net/ogc">
            <ogc:PropertyIsEqualTo>
              <ogc:PropertyName>CASE WHEN "planned_land_use" IN ('ODT', 'ONT') THEN 'residential' WHEN "planned_land_use" IN ('LUC', 'LUK', 'HNK', 'CLN', 'RSX', 'RPH', 'RDD', 'NTS', 'CNT', 'LMU', 'NKH') THEN 'agricultural' WHEN "planned_land_use" IN ('TSC') THEN 'state_offices' WHEN "planned_land_use" IN ('CQP', 'CAN') THEN 'defence_security' WHEN "planned_land_use" IN ('DVH', 'DXH', 'DYT', 'DGD', 'DTT', 'DKH', 'DNG', 'DSK') THEN 'public_service' WHEN "planned_land_use" IN ('SKK', 'SKN', 'SKT', 'TMD', 'SKC', 'SKS') THEN 'business' WHEN "planned_land_use" IN ('DGT', 'DTL', 'DNL', 'DBV', 'DCH', 'DRA', 'DKV') THEN 'public_use' WHEN "planned_land_use" IN ('TON', 'TIN', 'NTD') THEN 'religious_cemetery' WHEN "planned_land_use" IN ('SON', 'MNC') THEN 'water' WHEN "planned_land_use" IN ('PNK') THEN 'other' WHEN "planned_land_use" IN ('BCS', 'DCS', 'NCS') THEN 'unused' ELSE 'other' END</ogc:PropertyName>
              <ogc:Literal>public_use</ogc:Literal>
            </ogc:PropertyIsEqualTo>
          </ogc:Filter>
          <se:PolygonSymbolizer>
            <se:Fill>
              <se:SvgParameter name="fill">#bcbcbc</se:SvgParameter>
            </se:Fill>
            <se:Stroke>
              <se:SvgParameter name="stroke">#7d7d7d</se:SvgParameter>
              <se:SvgParameter name="stroke-width">1</se:SvgParameter>
              <se:SvgParameter name="stroke-linejoin">bevel</se:SvgParameter>
            </se:Stroke>
          </se:PolygonSymbolizer>
        </se:Rule>
        <se:Rule>
          <se:Name>Đất tôn giáo, tín ngưỡng, nghĩa trang (TON, TIN, NTD)</se:Name>
          <se:Description>
            <se:Title>Đất tôn giáo, tín ngưỡng, nghĩa trang (TON, TIN, NTD)</se:Title>
          </se:Description>
          <ogc:Filter xmlns:ogc="http://www.opengis.net/ogc">
            <ogc:PropertyIsEqualTo>
              <ogc:PropertyName>CASE WHEN "planned_land_use" IN ('ODT', 'ONT') THEN 'residential' WHEN "planned_land_use" IN ('LUC', 'LUK', 'HNK', 'CLN', 'RSX', 'RPH', 'RDD', 'NTS', 'CNT', 'LMU', 'NKH') THEN 'agricultural' WHEN "planned_land_use" IN ('TSC') THEN 'state_offices' WHEN "planned_land_use" IN ('CQP', 'CAN') THEN 'defence_security' WHEN "planned_land_use" IN ('DVH', 'DXH', 'DYT', 'DGD', 'DTT', 'DKH', 'DNG', 'DSK') THEN 'public_service' WHEN "planned_land_use" IN ('SKK', 'SKN', 'SKT', 'TMD', 'SKC', 'SKS') THEN 'business' WHEN "planned_land_use" IN ('DGT', 'DTL', 'DNL', 'DBV', 'DCH', 'DRA', 'DKV') THEN 'public_use' WHEN "planned_land_use" IN ('TON', 'TIN', 'NTD') THEN 'religious_cemetery' WHEN "planned_land_use" IN ('SON', 'MNC') THEN 'water' WHEN "planned_land_use" IN ('PNK') THEN 'other' WHEN "planned_land_use" IN ('BCS', 'DCS', 'NCS') THEN 'unused' ELSE 'other' END</ogc:PropertyName>
              <ogc:Literal>religious_cemetery</ogc:Literal>
            </ogc:PropertyIsEqualTo>
          </ogc:Filter>
          <se:PolygonSymbolizer>
            <se:Fill>
              <se:SvgParameter name="fill">#a2c4c9</se:SvgParameter>
            </se:Fill>
            <se:Stroke>
              <se:SvgParameter name="stroke">#6c8386</se:SvgParameter>
              <se:SvgParameter name="stroke-width">1</se:SvgParameter>
              <se:SvgParameter name="stroke-linejoin">bevel</se:SvgParameter>
            </se:Stroke>
          </se:PolygonSymbolizer>
        </se:Rule>
        <se:Rule>
          <se:Name>Đất sông, mặt nước chuyên dùng (SON, MNC)</se:Name>
          <se:Description>
            <se:Title>Đất sông, mặt nước chuyên dùng (SON, MNC)</se:Title>
          </se:Description>
          <ogc:Filter xmlns:ogc="http://www.opengis.net/ogc">
            <ogc:PropertyIsEqualTo>
              <ogc:PropertyName>CASE WHEN "planned_land_use" IN ('ODT', 'ONT') THEN 'residential' WHEN "planned_land_use" IN ('LUC', 'LUK', 'HNK', 'CLN', 'RSX', 'RPH', 'RDD', 'NTS', 'CNT', 'LMU', 'NKH') THEN 'agricultural' WHEN "planned_land_use" IN ('TSC') THEN 'state_offices' WHEN "planned_land_use" IN ('CQP', 'CAN') THEN 'defence_security' WHEN "planned_land_use" IN ('DVH', 'DXH', 'DYT', 'DGD', 'DTT', 'DKH', 'DNG', 'DSK') THEN 'public_service' WHEN "planned_land_use" IN ('SKK', 'SKN', 'SKT', 'TMD', 'SKC', 'SKS') THEN 'business' WHEN "planned_land_use" IN ('DGT', 'DTL', 'DNL', 'DBV', 'DCH', 'DRA', 'DKV') THEN 'public_use' WHEN "planned_land_use" IN ('TON', 'TIN', 'NTD') THEN 'religious_cemetery' WHEN "planned_land_use" IN ('SON', 'MNC') THEN 'water' WHEN "planned_land_use" IN ('PNK') THEN 'other' WHEN "planned_land_use" IN ('BCS', 'DCS', 'NCS') THEN 'unused' ELSE 'other' END</ogc:PropertyName>
              <ogc:Literal>water</ogc:Literal>
            </ogc:PropertyIsEqualTo>
          </ogc:Filter>
          <se:PolygonSymbolizer>
            <se:Fill>
              <se:SvgParameter name="fill">#6fa8dc</se:SvgParameter>
            </se:Fill>
            <se:Stroke>
              <se:SvgParameter name="stroke">#4a7093</se:SvgParameter>
              <se:SvgParameter name="stroke-width">1</se:SvgParameter>
              <se:SvgParameter name="stroke-linejoin">bevel</se:SvgParameter>
            </se:Stroke>
          </se:PolygonSymbolizer>
        </se:Rule>
        <se:Rule>
          <se:Name>Đất phi nông nghiệp khác (PNK) và mã chưa xác định</se:Name>
          <se:Description>
            <se:Title>Đất phi nông nghiệp khác (PNK) và mã chưa xác định</se:Title>
          </se:Description>
          <ogc:Filter xmlns:ogc="http://www.opengis.net/ogc">
            <ogc:PropertyIsEqualTo>
              <ogc:PropertyName>CASE WHEN "planned_land_use" IN ('ODT', 'ONT') THEN 'residential' WHEN "planned_land_use" IN ('LUC', 'LUK', 'HNK', 'CLN', 'RSX', 'RPH', 'RDD', 'NTS', 'CNT', 'LMU', 'NKH') THEN 'agricultural' WHEN "planned_land_use" IN ('TSC') THEN 'state_offices' WHEN "planned_land_use" IN ('CQP', 'CAN') THEN 'defence_security' WHEN "planned_land_use" IN ('DVH', 'DXH', 'DYT', 'DGD', 'DTT', 'DKH', 'DNG', 'DSK') THEN 'public_service' WHEN "planned_land_use" IN ('SKK', 'SKN', 'SKT', 'TMD', 'SKC', 'SKS') THEN 'business' WHEN "planned_land_use" IN ('DGT', 'DTL', 'DNL', 'DBV', 'DCH', 'DRA', 'DKV') THEN 'public_use' WHEN "planned_land_use" IN ('TON', 'TIN', 'NTD') THEN 'religious_cemetery' WHEN "planned_land_use" IN ('SON', 'MNC') THEN 'water' WHEN "planned_land_use" IN ('PNK') THEN 'other' WHEN "planned_land_use" IN ('BCS', 'DCS', 'NCS') THEN 'unused' ELSE 'other' END</ogc:PropertyName>
              <ogc:Literal>other</ogc:Literal>
            </ogc:PropertyIsEqualTo>
          </ogc:Filter>
          <se:PolygonSymbolizer>
            <se:Fill>
              <se:SvgParameter name="fill">#e0e0e0</se:SvgParameter>
            </se:Fill>
            <se:Stroke>
              <se:SvgParameter name="stroke">#959595</se:SvgParameter>
              <se:SvgParameter name="stroke-width">1</se:SvgParameter>
              <se:SvgParameter name="stroke-linejoin">bevel</se:SvgParameter>
            </se:Stroke>
          </se:PolygonSymbolizer>
        </se:Rule>
        <se:Rule>
          <se:Name>Đất chưa sử dụng (BCS, DCS, NCS)</se:Name>
          <se:Description>
            <se:Title>Đất chưa sử dụng (BCS, DCS, NCS)</se:Title>
          </se:Description>
          <ogc:Filter xmlns:ogc="http://www.opengis.net/ogc">
            <ogc:PropertyIsEqualTo>
              <ogc:PropertyName>CASE WHEN "planned_land_use" IN ('ODT', 'ONT') THEN 'residential' WHEN "planned_land_use" IN ('LUC', 'LUK', 'HNK', 'CLN', 'RSX', 'RPH', 'RDD', 'NTS', 'CNT', 'LMU', 'NKH') THEN 'agricultural' WHEN "planned_land_use" IN ('TSC') THEN 'state_offices' WHEN "planned_land_use" IN ('CQP', 'CAN') THEN 'defence_security' WHEN "planned_land_use" IN ('DVH', 'DXH', 'DYT', 'DGD', 'DTT', 'DKH', 'DNG', 'DSK') THEN 'public_service' WHEN "planned_land_use" IN ('SKK', 'SKN', 'SKT', 'TMD', 'SKC', 'SKS') THEN 'business' WHEN "planned_land_use" IN ('DGT', 'DTL', 'DNL', 'DBV', 'DCH', 'DRA', 'DKV') THEN 'public_use' WHEN "planned_land_use" IN ('TON', 'TIN', 'NTD') THEN 'religious_cemetery' WHEN "planned_land_use" IN ('SON', 'MNC') THEN 'water' WHEN "planned_land_use" IN ('PNK') THEN 'other' WHEN "planned_land_use" IN ('BCS', 'DCS', 'NCS') THEN 'unused' ELSE 'other' END</ogc:PropertyName>
              <ogc:Literal>unused</ogc:Literal>
            </ogc:PropertyIsEqualTo>
          </ogc:Filter>
          <se:PolygonSymbolizer>
            <se:Fill>
              <se:SvgParameter name="fill">#f7f3e3</se:SvgParameter>
            </se:Fill>
            <se:Stroke>
              <se:SvgParameter name="stroke">#a5a297</se:SvgParameter>
              <se:SvgParameter name="stroke-width">1</se:SvgParameter>
              <se:SvgParameter name="stroke-linejoin">bevel</se:SvgParameter>
            </se:Stroke>
          </se:PolygonSymbolizer>
        </se:Rule>
      </se:FeatureTypeStyle>
    </UserStyle>
  </NamedLayer>
</StyledLayerDescriptor>
